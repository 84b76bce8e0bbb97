# Worker for the benchmarks (run_all.py): fit one model with lme4 by REML.
#
# Usage: Rscript lme4_fit.R DATA_DIR WARMUP_DIR FORMULA COLUMNS MODE
#   DATA_DIR    folder with one file per column: NAME.f64 (little-endian doubles)
#               or NAME.i32 (little-endian 32-bit integers)
#   WARMUP_DIR  the same columns for a small data set of the same shape: a fit on
#               it runs first, so the timed fit finds lme4, Matrix and the
#               byte-compiler warm
#   FORMULA     the model, e.g. "y ~ x1 + x2 + (1 + x1 | g)"
#   COLUMNS     comma-separated NAME:KIND, KIND one of f64, i32, factor (i32
#               codes read as an R factor), e.g. "y:f64,x1:f64,g:factor"
#   MODE        "fit" times lme4::lmer on DATA_DIR; "baseline" stops before it;
#               "ml" fits by maximum likelihood (REML = FALSE) and reports the
#               deviance as the objective: the reference for packages that only
#               do ML (GPBoost)
#
# Prints one line "RESULT {json}" on stdout with the estimates in the layout of
# peers.py. Only the lmer call is timed (system.time, elapsed); reading the data
# and building the factors are not. Plain lme4::lmer is used, not lmerTest's
# wrapper, which does extra work after the fit for Satterthwaite's method.

suppressPackageStartupMessages(library(lme4))

args <- commandArgs(trailingOnly = TRUE)
data_dir <- args[[1]]
warmup_dir <- args[[2]]
model <- as.formula(args[[3]])
columns <- strsplit(strsplit(args[[4]], ",")[[1]], ":")
mode <- args[[5]]

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

invisible(suppressMessages(lme4::lmer(model, data = read_data(warmup_dir), REML = TRUE)))
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
  reml <- mode != "ml"
  elapsed <- system.time(
    fit <- lme4::lmer(model, data = d, REML = reml)
  )[["elapsed"]]
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
    "\"sigma\": ", num(sigma(fit)), ", ",
    "\"objective\": ", num(if (reml) REMLcrit(fit) else deviance(fit)), ", ",
    "\"converged\": ", if (length(messages) == 0) "true" else "false",
    "}\n",
    sep = ""
  )
}
