# Regenerates the glmer (GLMM) reference fits in this folder.
#   Made with R 4.2.2 Patched (2022-11-10 r83330), lme4 1.1-31, mlmRev 1.0-8, jsonlite.
#   apt-get install r-base-core r-cran-lme4 r-cran-mlmrev r-cran-jsonlite
#   cd tests/data/glmer && Rscript make_glmer.R [outdir] [case ...]
# Each case writes <name>.csv (the data, with model-matrix columns added) and
# <name>.json (what glmer estimated on it). See README.md for the fields.
#
# Every reference fit ("fit") uses
#   glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10, optCtrl = list(maxfun = 1e5, rhoend = 1e-10))
# tolPwrss matters: with lme4's default tolPwrss = 1e-7 the inner PIRLS stops before the conditional
# modes are exact, and the reported log-likelihood is too low by up to ~3e-4 (cbpp: -92.026566 instead of
# -92.026282, the value an independent Laplace computation gives). The fits with lme4's default control and
# with plain glmerControl(optimizer = "bobyqa") are kept as "default_fit" and "bobyqa_fit".
#
# NB lme4 quirk: for nAGQ > 1, logLik() (and AIC, BIC, deviance) omit the saturated model's log-likelihood,
# i.e. lme4's loglik = full loglik - saturated loglik; "loglik_full" adds it back (nAGQ = 1 includes it).
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
outdir <- if (length(args) >= 1) args[1] else "."
only <- if (length(args) >= 2) args[-1] else NULL

clean <- function(s) {
  s <- sub("^I\\(([A-Za-z0-9_.]+)\\^2\\)$", "\\12", s)   # I(age^2) -> age2
  s <- gsub("\\+", "plus", s)                           # livch3+ -> livch3plus
  gsub("[^A-Za-z0-9_]", "_", gsub("[()]", "", s))       # (Intercept) -> Intercept, scale(HEIGHT) -> scaleHEIGHT
}
CTL <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10, optCtrl = list(maxfun = 1e5, rhoend = 1e-10))
CTL_TEXT <- 'glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10, optCtrl = list(maxfun = 1e5, rhoend = 1e-10))'

# saturated log-likelihood (what lme4 leaves out of logLik for nAGQ > 1)
saturated_loglik <- function(m) {
  y <- m@resp$y; w <- m@resp$weights; fam <- family(m)$family
  if (fam == "binomial") sum(dbinom(round(w * y), round(w), y, log = TRUE))
  else if (fam == "poisson") sum(w * dpois(y, y, log = TRUE)) else NA
}

random_json <- function(m) {
  rdf <- as.data.frame(ranef(m, condVar = TRUE)); vdf <- as.data.frame(VarCorr(m))
  lapply(unique(as.character(rdf$grpvar)), function(g) {
    r <- rdf[rdf$grpvar == g, ]; terms <- unique(as.character(r$term))
    levs <- unique(as.character(r$grp))
    val <- sapply(terms, function(t) r$condval[r$term == t][match(levs, r$grp[r$term == t])])
    csd <- sapply(terms, function(t) r$condsd[r$term == t][match(levs, r$grp[r$term == t])])
    v <- vdf[vdf$grp == g, ]
    sds <- sapply(terms, function(t) v$sdcor[is.na(v$var2) & v$var1 == t])
    cr <- diag(length(terms))
    for (i in seq_len(nrow(v))) if (!is.na(v$var2[i])) {
      a <- match(v$var1[i], terms); b <- match(v$var2[i], terms); cr[a, b] <- cr[b, a] <- v$sdcor[i] }
    list(group = g, terms = I(clean(terms)), sd = I(unname(sds)), corr = unname(cr),
         levels = I(levs), ranef = unname(matrix(val, ncol = length(terms))),
         ranef_condsd = unname(matrix(csd, ncol = length(terms))))
  })
}

conv_messages <- function(m) as.list(c(m@optinfo$conv$lme4$messages, m@optinfo$warnings))

fit_json <- function(m, secs, profile = TRUE) {
  fe <- fixef(m); nm <- clean(names(fe)); V <- as.matrix(vcov(m)); se <- sqrt(diag(V))
  s <- summary(m); cf <- s$coefficients
  ll <- logLik(m)
  out <- list(
    fixef = as.list(setNames(unname(fe), nm)),
    fixef_se = as.list(setNames(unname(se), nm)),
    vcov = unname(V),
    theta = I(unname(getME(m, "theta"))),
    theta_names = I(names(getME(m, "theta"))),
    random = random_json(m),
    loglik = as.numeric(ll),
    deviance = deviance(m),
    minus2loglik = -2 * as.numeric(ll),
    df = attr(ll, "df"),
    aic = AIC(m), bic = BIC(m),
    df_resid = df.residual(m),
    nobs = nobs(m),
    is_singular = isSingular(m),
    scaled_resid_quantiles = unname(quantile(s$residuals)),
    z = as.list(setNames(unname(cf[, "z value"]), nm)),
    p = as.list(setNames(unname(cf[, "Pr(>|z|)"]), nm)),
    fitted = unname(fitted(m)),
    linear_predictor = unname(predict(m, type = "link")),
    predict_re0 = unname(predict(m, re.form = NA, type = "response")),
    predict_re0_link = unname(predict(m, re.form = NA, type = "link")),
    wald_ci = list(names = I(nm), lower = I(unname(confint(m, method = "Wald", parm = "beta_")[, 1])),
                   upper = I(unname(confint(m, method = "Wald", parm = "beta_")[, 2]))),
    optimizer_feval = m@optinfo$feval,
    convergence_messages = conv_messages(m),
    time_seconds = secs
  )
  if (m@devcomp$dims[["nAGQ"]] > 1) {
    out$saturated_loglik <- saturated_loglik(m)
    out$loglik_full <- out$loglik + out$saturated_loglik
  }
  if (profile) {
    warn <- character(0)
    pt <- system.time(pr <- withCallingHandlers(
      tryCatch(confint(m, method = "profile", oldNames = FALSE), error = function(e) { warn <<- c(warn, conditionMessage(e)); NULL }),
      warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") }))[["elapsed"]]
    if (!is.null(pr)) out$profile_ci <- list(names = I(clean_profile(rownames(pr))), lme4_names = I(rownames(pr)),
                                             lower = I(unname(pr[, 1])), upper = I(unname(pr[, 2])),
                                             warnings = as.list(unique(warn)), time_seconds = pt)
  }
  out$summary_text <- capture.output(print(s))
  out
}
clean_profile <- function(x) ifelse(grepl("\\|", x), x, clean(x))

brief_fit <- function(m, control_text) {
  list(control = control_text, loglik = as.numeric(logLik(m)), deviance = deviance(m),
       fixef = as.list(setNames(unname(fixef(m)), clean(names(fixef(m))))),
       theta = I(unname(getME(m, "theta"))), optimizer_feval = m@optinfo$feval,
       convergence_messages = conv_messages(m))
}

glmer_timed <- function(...) {
  t <- system.time(m <- glmer(...))[["elapsed"]]
  list(m = m, t = t)
}

case <- function(name, data, formula, family, random_spec, nAGQ = 1, profile = TRUE, response = NULL,
                 weights = NULL, offset = NULL, note = "", extra = list(), glmer_weights = NULL, data_name = name) {
  if (!is.null(only) && !(name %in% only)) return(invisible(NULL))
  cat("case", name, "...\n")
  mm <- model.matrix(lme4::nobars(formula), data)
  fixed_cols <- setdiff(colnames(mm), "(Intercept)")
  for (cn in fixed_cols) data[[clean(cn)]] <- unname(mm[, cn])
  data$.w <- if (is.null(glmer_weights)) NULL else data[[glmer_weights]]
  fam <- family
  ft <- if (is.null(glmer_weights)) glmer_timed(formula, data, family = fam, nAGQ = nAGQ, control = CTL)
        else glmer_timed(formula, data, family = fam, nAGQ = nAGQ, control = CTL, weights = .w)
  m <- ft$m
  m@call$data <- as.name(data_name); m@call$control <- as.name("ctl")   # summary prints "Data: <data_name>", not "..2"
  refit <- function(ctl) if (is.null(glmer_weights)) glmer(formula, data, family = fam, nAGQ = nAGQ, control = ctl)
                         else glmer(formula, data, family = fam, nAGQ = nAGQ, control = ctl, weights = .w)
  m_def <- suppressWarnings(refit(glmerControl()))
  m_bob <- suppressWarnings(refit(glmerControl(optimizer = "bobyqa")))
  data$.w <- NULL
  meta <- list(name = name, formula = paste(deparse(formula, width.cutoff = 500), collapse = ""), note = note,
               family = fam$family, link = fam$link, nAGQ = nAGQ,
               response = if (is.null(response)) all.vars(formula)[1] else response,
               fixed_columns = I(clean(fixed_cols)), random = random_spec,
               weights = weights, offset = offset,
               lme4_version = as.character(packageVersion("lme4")), R_version = R.version.string,
               control = CTL_TEXT,
               fit = fit_json(m, ft$t, profile),
               default_fit = brief_fit(m_def, "glmerControl()  (lme4 default: bobyqa then Nelder_Mead, tolPwrss = 1e-7)"),
               bobyqa_fit = brief_fit(m_bob, 'glmerControl(optimizer = "bobyqa")'))
  meta <- c(meta, extra)
  meta <- meta[!vapply(meta, is.null, TRUE)]
  write.csv(data, file.path(outdir, paste0(name, ".csv")), row.names = FALSE)
  write_json(meta, file.path(outdir, paste0(name, ".json")), digits = NA, auto_unbox = TRUE, pretty = TRUE)
  cat(sprintf("wrote %s: loglik %.10f (default control %.10f), %.2fs\n", name, meta$fit$loglik,
              meta$default_fit$loglik, ft$t))
  invisible(m)
}
re <- function(group, columns, correlated = TRUE) list(group = group, columns = I(columns), correlated = correlated)

## --- cbpp -----------------------------------------------------------------------------------------------
data(cbpp, package = "lme4")
cb <- data.frame(herd = as.character(cbpp$herd), period = as.character(cbpp$period),
                 incidence = cbpp$incidence, size = cbpp$size, prop = cbpp$incidence / cbpp$size)
cb$herd <- factor(cb$herd, levels = levels(cbpp$herd)); cb$period <- factor(cb$period, levels = levels(cbpp$period))
f_cb <- cbind(incidence, size - incidence) ~ period + (1 | herd)
binom_const <- sum(lchoose(cb$size, cb$incidence))

# nAGQ table (case 1)
nagq <- lapply(c(1, 3, 5, 9, 25), function(q) {
  m <- glmer(f_cb, cb, binomial, nAGQ = q, control = CTL)
  sat <- if (q > 1) saturated_loglik(m) else 0
  list(nAGQ = q, loglik_lme4 = as.numeric(logLik(m)), loglik = as.numeric(logLik(m)) + sat,
       fixef = as.list(setNames(unname(fixef(m)), clean(names(fixef(m))))), theta = I(unname(getME(m, "theta"))))
})
m_cb <- case("cbpp_binomial", cb, f_cb, binomial(), data_name = "cbpp", list(re("herd", "Intercept")), response = "prop", weights = "size",
     note = "aggregated binomial: in skmixed the target is prop = incidence/size with sample_weight = size (the same fit as glmer(prop ~ period + (1 | herd), weights = size))",
     extra = list(binomial_constant = binom_const,
                  nagq_table = nagq,
                  nagq_table_note = "loglik = full log-likelihood (lme4's loglik_lme4 plus the saturated loglik for nAGQ > 1); fits with the reference control"))
if (!is.null(m_cb)) {  # the proportion/weights form is the same fit
  m2 <- glmer(prop ~ period + (1 | herd), cb, binomial, weights = size, control = CTL)
  stopifnot(abs(logLik(m2) - logLik(m_cb)) < 1e-8)
}

case("cbpp_agq25", cb, f_cb, binomial(), data_name = "cbpp", list(re("herd", "Intercept")), nAGQ = 25, response = "prop", weights = "size",
     note = "cbpp_binomial with nAGQ = 25; lme4's loglik/deviance/aic/bic omit the saturated loglik for nAGQ > 1 (see loglik_full)",
     extra = list(binomial_constant = binom_const))

# Bernoulli expansion: one row per animal
idx <- rep(seq_len(nrow(cb)), cb$size)
be <- data.frame(herd = cb$herd[idx], period = cb$period[idx], cbpp_row = idx,
                 y = unlist(lapply(seq_len(nrow(cb)), function(i) rep(c(1, 0), c(cb$incidence[i], cb$size[i] - cb$incidence[i])))))
m_cb_ll <- { m <- glmer(f_cb, cb, binomial, control = CTL); as.numeric(logLik(m)) }
case("cbpp_bernoulli", be, y ~ period + (1 | herd), binomial(), list(re("herd", "Intercept")),
     note = "cbpp expanded to one 0/1 row per animal (cbpp_row = row of cbpp_binomial.csv); same fixef/theta as cbpp_binomial, loglik lower by binomial_constant",
     extra = list(binomial_fit_loglik = m_cb_ll, binomial_constant = binom_const,
                  binomial_constant_note = "sum(lchoose(size, incidence)): cbpp_binomial loglik - cbpp_bernoulli loglik (Laplace)"))

case("probit", be, y ~ period + (1 | herd), binomial(link = "probit"), list(re("herd", "Intercept")),
     note = "cbpp Bernoulli rows (as cbpp_bernoulli.csv) with a probit link")

## --- grouseticks ---------------------------------------------------------------------------------------
data(grouseticks, package = "lme4")
gt <- grouseticks
gt$scaleHEIGHT <- as.numeric(scale(gt$HEIGHT))
case("grouseticks", gt, data_name = "grouseticks", TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION), poisson(),
     list(re("BROOD", "Intercept"), re("INDEX", "Intercept"), re("LOCATION", "Intercept")), profile = FALSE,
     note = "Poisson, three random intercepts; INDEX is one level per observation (overdispersion); scaleHEIGHT = scale(HEIGHT) (mean 462.2, sd as R's sd)")

## --- Contraception ---------------------------------------------------------------------------------------
data(Contraception, package = "mlmRev")
ct <- Contraception
ct$use <- as.numeric(ct$use == "Y")
# the same model with age in decades is better conditioned; its optimum, mapped back, checks the reference fit
ct_a <- transform(ct, a = age / 10)
m_a <- glmer(use ~ a + I(a^2) + urban + livch + (1 + urban | district), ct_a, binomial, control = CTL)
fe_a <- fixef(m_a) * c(1, 1 / 10, 1 / 100, 1, 1, 1, 1)
case("contraception", ct, data_name = "Contraception", use ~ age + I(age^2) + urban + livch + (1 + urban | district), binomial(),
     list(re("district", c("Intercept", "urbanY"))), profile = FALSE,
     note = paste("mlmRev Contraception, use = 1 for Y; age2 = age^2 (age centred as in mlmRev), correlated random slope of urbanY.",
                  "lme4 warns 'nearly unidentifiable: very large eigenvalue' (only the scale of age^2); rescaled_check is the",
                  "same model fitted with age/10, mapped back: it agrees to ~1e-9 in loglik, ~1e-5 in fixef"),
     extra = list(rescaled_check = list(loglik = as.numeric(logLik(m_a)), theta = I(unname(getME(m_a, "theta"))),
                  fixef = as.list(setNames(unname(fe_a), c("Intercept", "age", "age2", "urbanY", "livch1", "livch2", "livch3plus"))))))

## --- VerbAgg -------------------------------------------------------------------------------------------
data(VerbAgg, package = "lme4")
va <- VerbAgg
va$r2 <- as.numeric(va$r2 == "Y")
case("verbagg", va, data_name = "VerbAgg", r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item), binomial(),
     list(re("id", "Intercept"), re("item", "Intercept")), profile = FALSE,
     note = "lme4 VerbAgg, r2 = 1 for Y; crossed random intercepts (316 persons x 24 items)")

## --- simulated Poisson with offset and correlated random slope ---------------------------------------------
set.seed(20261201)
ng <- 40; nper <- 15
po <- data.frame(g = factor(sprintf("g%02d", rep(seq_len(ng), each = nper))), x = round(rnorm(ng * nper), 4),
                 exposure = round(runif(ng * nper, 0.5, 5), 3))
L <- t(chol(matrix(c(0.5^2, 0.4 * 0.5 * 0.3, 0.4 * 0.5 * 0.3, 0.3^2), 2)))
b <- t(L %*% matrix(rnorm(2 * ng), 2))
eta <- 0.3 + b[po$g, 1] + (0.6 + b[po$g, 2]) * po$x + log(po$exposure)
po$y <- rpois(nrow(po), exp(eta))
po$log_exposure <- log(po$exposure)
case("poisson_offset", po, y ~ x + offset(log(exposure)) + (1 + x | g), poisson(),
     list(re("g", c("Intercept", "x"))), offset = "log_exposure",
     note = "simulated (set.seed(20261201)): beta = (0.3, 0.6), sd = (0.5, 0.3), corr 0.4; offset log_exposure = log(exposure)")

## --- simulated cloglog binomial --------------------------------------------------------------------------
set.seed(7)
ng <- 30; nper <- 10
cl <- data.frame(g = factor(sprintf("c%02d", rep(seq_len(ng), each = nper))), x = round(rnorm(ng * nper), 4))
u <- rnorm(ng, 0, 0.7)
cl$y <- rbinom(nrow(cl), 1, 1 - exp(-exp(-0.8 + 0.6 * cl$x + u[cl$g])))
case("cloglog", cl, y ~ x + (1 | g), binomial(link = "cloglog"), list(re("g", "Intercept")),
     note = "simulated (set.seed(7)) Bernoulli, cloglog link: beta = (-0.8, 0.6), sd = 0.7")
