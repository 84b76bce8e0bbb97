# lme4 references for prior weights and offsets (skmixed tests/test_weights.py).
# Run from this folder: Rscript make_weights.R
suppressMessages({library(lme4); library(jsonlite)})
set.seed(20261201)

# lme4's default tolerances stop ~1e-4 (relative) from the optimum on these
# flat criteria; each fit is polished from its own estimates, as
# tests/data/analyses/make_analyses.R does.
POLISH <- lmerControl(optimizer = "nloptwrap",
                      optCtrl = list(xtol_abs = 1e-13, ftol_abs = 1e-15, xtol_rel = 1e-13,
                                     ftol_rel = 1e-15, maxeval = 1e5))
polish <- function(m) update(m, start = getME(m, "theta"), control = POLISH)

fit_summary <- function(m) {
  m <- polish(m)
  re <- ranef(m, condVar = TRUE)
  list(
    criterion = if (isREML(m)) REMLcrit(m) else deviance(m),
    fixef = as.list(fixef(m)),
    se = as.list(sqrt(diag(as.matrix(vcov(m))))),
    sigma = sigma(m),
    theta = unname(getME(m, "theta")),
    ranef = lapply(re, function(r) as.list(r)),
    fitted = unname(fitted(m)),
    nobs = nobs(m)
  )
}

cases <- list()

# sleepstudy, random slopes, weights in (0.2, 3)
d <- sleepstudy
d$w <- round(runif(nrow(d), 0.2, 3), 3)
d$off <- round(rnorm(nrow(d), 0, 20), 2)
write.csv(d, "sleepstudy_weights.csv", row.names = FALSE)
for (reml in c(TRUE, FALSE)) {
  m <- lmer(Reaction ~ Days + (Days | Subject), d, weights = w, REML = reml)
  cases[[paste0("sleepstudy_", if (reml) "reml" else "ml")]] <- fit_summary(m)
  m <- lmer(Reaction ~ Days + (Days | Subject) + offset(off), d, weights = w, REML = reml)
  cases[[paste0("sleepstudy_offset_", if (reml) "reml" else "ml")]] <- fit_summary(m)
}

# Penicillin, crossed random intercepts, integer-like weights 1..4
p <- Penicillin
p$w <- sample(1:4, nrow(p), replace = TRUE)
p$x <- round(rnorm(nrow(p)), 3)
write.csv(p, "penicillin_weights.csv", row.names = FALSE)
for (reml in c(TRUE, FALSE)) {
  m <- lmer(diameter ~ x + (1 | plate) + (1 | sample), p, weights = w, REML = reml)
  cases[[paste0("penicillin_", if (reml) "reml" else "ml")]] <- fit_summary(m)
}

write(toJSON(cases, digits = NA, auto_unbox = TRUE, pretty = TRUE), "weights.json")
