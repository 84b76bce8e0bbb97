# Worker for the GLMM benchmarks (run_glmm.py): fit one model with lme4::glmer.
#
# Usage: Rscript glmer_fit.R DATA_DIR WARMUP_DIR FORMULA COLUMNS FAMILY MODE
#   DATA_DIR, WARMUP_DIR, COLUMNS  as for lme4_fit.R (raw little-endian column
#               files; NAME:KIND with KIND f64, i32 or factor)
#   FORMULA     the model in lme4's syntax, an offset as an offset() term, e.g.
#               "y ~ x1 + x2 + (1 | g) + offset(log_t)"
#   FAMILY      "binomial" (logit link, 0/1 response) or "poisson" (log link)
#   MODE        "fit" times the glmer call on DATA_DIR; "baseline" stops before
#
# glmer runs with the Laplace approximation (nAGQ = 1) and
# glmerControl(optimizer = "bobyqa") for both stages. Prints one line
# "RESULT {json}" with the estimates in the layout of glmm_peers.py: fixef, sd,
# cor, loglik (logLik(fit): the Laplace log-likelihood) and converged (no
# convergence message from lme4). Only the glmer call is timed.

suppressPackageStartupMessages(library(lme4))

args <- commandArgs(trailingOnly = TRUE)
data_dir <- args[[1]]
warmup_dir <- args[[2]]
model <- as.formula(args[[3]])
columns <- strsplit(strsplit(args[[4]], ",")[[1]], ":")
family <- switch(args[[5]], binomial = binomial(), poisson = poisson())
mode <- args[[6]]

read_column <- function(folder, name, kind) {
  is_double <- kind == "f64"
  path <- file.path(folder, paste0(name, if (is_double) ".f64" else ".i32"))
  n <- file.size(path) / if (is_double) 8L else 4L
  con <- file(path, "rb")
  on.exit(close(con))
  values <- readBin(con, what = if (is_double) "double" else "integer", n = n,
                    size = if (is_double) 8L else 4L, endian = "little")
  if (kind == "factor") factor(values) else values
}

read_data <- function(folder) {
  d <- lapply(columns, function(c) read_column(folder, c[[1]], c[[2]]))
  names(d) <- vapply(columns, function(c) c[[1]], "")
  as.data.frame(d)
}

control <- glmerControl(optimizer = "bobyqa")
fit_glmer <- function(d) lme4::glmer(model, data = d, family = family, control = control)

invisible(suppressMessages(suppressWarnings(fit_glmer(read_data(warmup_dir)))))
d <- read_data(data_dir)

num <- function(x) sprintf("%.17g", x)
clean <- function(x) ifelse(x == "(Intercept)", "Intercept", x)
entries <- function(values) {
  if (length(values) == 0) return("{}")
  body <- paste0("\"", names(values), "\": ", num(unname(values)), collapse = ", ")
  paste0("{", body, "}")
}

if (mode == "baseline") {
  cat("RESULT {\"seconds\": null}\n")
} else {
  elapsed <- system.time(fit <- fit_glmer(d))[["elapsed"]]
  fixed <- fixef(fit)
  names(fixed) <- clean(names(fixed))
  sds <- c()
  cors <- c()
  vc <- VarCorr(fit)
  for (g in names(vc)) {
    s <- attr(vc[[g]], "stddev")
    terms <- clean(names(s))
    sds[paste0(g, ":", terms)] <- unname(s)
    r <- attr(vc[[g]], "correlation")
    if (length(s) > 1) {
      for (i in 2:length(s)) for (j in 1:(i - 1)) {
        cors[paste0(g, ":", terms[j], ":", terms[i])] <- r[i, j]
      }
    }
  }
  messages <- fit@optinfo$conv$lme4$messages
  cat(
    "RESULT {",
    "\"seconds\": ", num(elapsed), ", ",
    "\"fixef\": ", entries(fixed), ", ",
    "\"sd\": ", entries(sds), ", ",
    "\"cor\": ", entries(cors), ", ",
    "\"sigma\": NaN, ",
    "\"objective\": null, ",
    "\"loglik\": ", num(as.numeric(logLik(fit))), ", ",
    "\"converged\": ", if (length(messages) == 0) "true" else "false",
    "}\n",
    sep = ""
  )
}
