# lme4's convergence derivatives (optinfo$derivs: gradient and Hessian of the
# criterion in theta, by lme4's finite differences) for tests/test_optimize.py.
# Run from this folder: Rscript make_derivs.R  (writes derivs.json)
library(lme4)
library(jsonlite)
ss <- read.csv("../sleepstudy.csv")
pen <- read.csv("../penicillin.csv")
fits <- list(
  sleepstudy_REML = lmer(Reaction ~ Days + (Days | Subject), ss, REML = TRUE),
  sleepstudy_ML = lmer(Reaction ~ Days + (Days | Subject), ss, REML = FALSE),
  penicillin_REML = lmer(diameter ~ 1 + (1 | plate) + (1 | sample), pen, REML = TRUE)
)
out <- lapply(fits, function(m) list(
  theta = unname(getME(m, "theta")),
  theta_names = names(getME(m, "theta")),
  gradient = m@optinfo$derivs$gradient,
  hessian = m@optinfo$derivs$Hessian,
  lme4_version = as.character(packageVersion("lme4"))
))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "derivs.json")
