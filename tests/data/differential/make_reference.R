# lme4 reference fits for the differential test (tests/test_differential.py).
#   apt-get install r-base-core r-cran-lme4 r-cran-jsonlite
#   python make_designs.py && Rscript make_reference.R     (from this folder)
# Reads designs.json and designs.csv.gz (written by make_designs.py), fits every
# design with lmer(REML = TRUE) and lmer(REML = FALSE) under lme4's default
# control, and writes reference.json: per design and method the criterion
# (REML criterion for REML fits, deviance for ML fits, as lme4 prints them),
# the fixed effects and their SEs, sigma, the SDs and correlations of every
# factor's random effects (lme4's VarCorr, `||` terms merged back into their
# factor), theta, isSingular, lme4's convergence messages, every warning and
# message lmer emitted, and the elapsed fit time in seconds.
# R and lme4 make the reference; the tests never need them.
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
here <- if (length(args) >= 1) args[1] else "."

designs <- fromJSON(file.path(here, "designs.json"), simplifyVector = FALSE)$designs
data <- read.csv(gzfile(file.path(here, "designs.csv.gz")), stringsAsFactors = FALSE)
by_design <- split(data, data$design)

clean <- function(s) sub("^\\(Intercept\\)$", "Intercept", s)

varcorr <- function(m, factors) {
  v <- as.data.frame(VarCorr(m))
  v$factor <- sub("\\.[0-9]+$", "", v$grp)
  out <- list()
  for (f in factors) {
    terms <- c(if (f$intercept) "(Intercept)", unlist(f$slopes))
    rows <- v[v$factor == f$name, ]
    sds <- sapply(terms, function(t) rows$sdcor[is.na(rows$var2) & rows$var1 == t])
    cr <- diag(length(terms))
    for (i in seq_len(nrow(rows))) if (!is.na(rows$var2[i])) {
      a <- match(rows$var1[i], terms); b <- match(rows$var2[i], terms)
      cr[a, b] <- cr[b, a] <- rows$sdcor[i]
    }
    out[[f$name]] <- list(terms = clean(terms), sd = unname(sds), corr = unname(cr))
  }
  out
}

fit_one <- function(d, spec, reml) {
  caught_warnings <- character(0); caught_messages <- character(0)
  form <- as.formula(spec$formula)
  elapsed <- system.time(
    m <- withCallingHandlers(
      lmer(form, d, REML = reml),
      warning = function(w) {
        caught_warnings <<- c(caught_warnings, conditionMessage(w))
        invokeRestart("muffleWarning")
      },
      message = function(msg) {
        caught_messages <<- c(caught_messages, trimws(conditionMessage(msg)))
        invokeRestart("muffleMessage")
      }
    )
  )[["elapsed"]]
  factors <- lapply(spec$factors, function(f) c(f, intercept = spec$random_intercept))
  fe <- fixef(m); se <- sqrt(diag(as.matrix(vcov(m))))
  conv <- m@optinfo$conv
  list(
    criterion = unname(if (reml) REMLcrit(m) else deviance(m)),
    fixef = as.list(setNames(unname(fe), clean(names(fe)))),
    fixef_se = as.list(setNames(unname(se), clean(names(fe)))),
    sigma = sigma(m),
    random = varcorr(m, factors),
    theta = as.list(getME(m, "theta")),
    is_singular = isSingular(m),
    optimizer_code = conv$opt,
    conv_messages = as.list(unlist(conv$lme4$messages)),
    optimizer_warnings = as.list(unlist(m@optinfo$warnings)),
    warnings = as.list(caught_warnings),
    messages = as.list(caught_messages),
    time = elapsed
  )
}

reference <- list()
for (spec in designs) {
  d <- by_design[[spec$id]]
  d <- d[, colSums(!is.na(d)) > 0, drop = FALSE]
  fits <- list()
  for (method in c("REML", "ML")) {
    fits[[method]] <- tryCatch(fit_one(d, spec, method == "REML"),
                               error = function(e) list(error = conditionMessage(e)))
  }
  reference[[spec$id]] <- list(category = spec$category, formula = spec$formula, fits = fits)
  cat(spec$id, sprintf("%.4f", fits$REML$criterion), sprintf("%.4f", fits$ML$criterion), "\n")
}
out <- list(lme4_version = as.character(packageVersion("lme4")),
            r_version = R.version.string, designs = reference)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = 1, null = "null"),
           file.path(here, "reference.json"))
cat("wrote reference.json:", length(reference), "designs\n")
