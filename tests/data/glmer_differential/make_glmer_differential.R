# glmer reference fits for the GLMM differential test (tests/test_glmm_differential.py).
#   python make_glmm_designs.py && Rscript make_glmer_differential.R  (from this folder)
#   Rscript make_glmer_differential.R DIR                              (another suite)
# Reads designs.json and designs.csv.gz (written by make_glmm_designs.py) and fits every
# design with glmer twice:
#   - `fit`: glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10,
#            optCtrl = list(maxfun = 1e5, rhoend = 1e-10)), the tight reference;
#   - `default_fit`: glmerControl() (lme4's defaults), for the record.
# Writes reference.json: per design and fit the log-likelihood (logLik, nAGQ = 1:
# the full Laplace log-likelihood), theta with lme4's names, the fixed effects (and
# their SEs for `fit`), every factor's SDs and correlations (VarCorr, `||` terms
# merged back into their factor), isSingular, lme4's convergence messages, the
# warnings and messages glmer emitted, the optimizer's function evaluations and the
# elapsed fit time.  R and lme4 make the reference; the tests never need them.
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
here <- if (length(args) >= 1) args[1] else "."

designs <- fromJSON(file.path(here, "designs.json"), simplifyVector = FALSE)$designs
data <- read.csv(gzfile(file.path(here, "designs.csv.gz")), stringsAsFactors = FALSE)
by_design <- split(data, data$design)

tight <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10,
                      optCtrl = list(maxfun = 1e5, rhoend = 1e-10))
controls <- list(fit = tight, default_fit = glmerControl())

intercept_name <- function(s) sub("^\\(Intercept\\)$", "Intercept", s)

random_parts <- function(m, factors) {
  v <- as.data.frame(VarCorr(m))
  v$factor <- sub("\\.[0-9]+$", "", v$grp)  # `||` splits g into g, g.1
  parts <- list()
  for (f in factors) {
    terms <- c("(Intercept)", unlist(f$slopes))
    own <- v[v$factor == f$name, ]
    sd <- vapply(terms, function(t) own$sdcor[is.na(own$var2) & own$var1 == t], 0)
    corr <- diag(length(terms))
    for (i in which(!is.na(own$var2))) {
      j <- match(own$var1[i], terms); k <- match(own$var2[i], terms)
      corr[j, k] <- corr[k, j] <- own$sdcor[i]
    }
    parts[[f$name]] <- list(terms = intercept_name(terms), sd = unname(sd),
                            corr = unname(corr))
  }
  parts
}

fit_glmer <- function(d, spec, control) {
  warned <- character(0); said <- character(0)
  d$.weights <- if (is.null(spec$r_weights)) 1 else d[[spec$r_weights]]
  fam <- if (spec$family == "binomial") binomial(spec$link) else poisson(spec$link)
  elapsed <- system.time(
    m <- withCallingHandlers(
      glmer(as.formula(spec$formula), data = d, family = fam, weights = .weights,
            control = control),
      warning = function(w) {
        warned <<- c(warned, conditionMessage(w)); invokeRestart("muffleWarning")
      },
      message = function(msg) {
        said <<- c(said, trimws(conditionMessage(msg))); invokeRestart("muffleMessage")
      }
    )
  )[["elapsed"]]
  fe <- fixef(m)
  list(
    loglik = as.numeric(logLik(m)),
    theta = as.list(unname(getME(m, "theta"))),
    theta_names = as.list(names(getME(m, "theta"))),
    fixef = as.list(setNames(unname(fe), intercept_name(names(fe)))),
    fixef_se = as.list(setNames(unname(sqrt(diag(as.matrix(vcov(m))))),
                                intercept_name(names(fe)))),
    random = random_parts(m, spec$factors),
    is_singular = isSingular(m),
    conv_messages = as.list(unlist(m@optinfo$conv$lme4$messages)),
    optimizer_code = m@optinfo$conv$opt,
    optimizer_feval = m@optinfo$feval,
    warnings = as.list(warned),
    messages = as.list(said),
    time = elapsed
  )
}

reference <- list()
for (spec in designs) {
  d <- by_design[[spec$id]]
  d <- d[, colSums(!is.na(d)) > 0, drop = FALSE]
  fits <- lapply(controls, function(control)
    tryCatch(fit_glmer(d, spec, control),
             error = function(e) list(error = conditionMessage(e))))
  reference[[spec$id]] <- list(category = spec$category, formula = spec$formula,
                               fits = fits)
  cat(sprintf("%-32s %14.6f %14.6f\n", spec$id,
              if (is.null(fits$fit$loglik)) NA else fits$fit$loglik,
              if (is.null(fits$default_fit$loglik)) NA else fits$default_fit$loglik))
}
out <- list(lme4_version = as.character(packageVersion("lme4")),
            r_version = R.version.string, designs = reference)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = 1, null = "null"),
           file.path(here, "reference.json"))
cat("wrote reference.json:", length(reference), "designs\n")
