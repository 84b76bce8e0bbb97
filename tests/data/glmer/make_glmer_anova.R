# Likelihood-ratio tests between nested glmer fits (lme4's anova), for
# tests/test_glmm_targets.py.  Run from this folder:
#   Rscript make_glmer_anova.R
# Writes glmer_anova.json.  Data: contraception.csv (made by make_glmer.R).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
d <- read.csv("contraception.csv")
ctl <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10,
                    optCtrl = list(maxfun = 1e5, rhoend = 1e-10))
m0 <- glmer(use ~ age + age2 + urbanY + (1 | district), d, binomial, control = ctl)
m1 <- glmer(use ~ age + age2 + urbanY + livch1 + livch2 + livch3plus + (1 | district),
            d, binomial, control = ctl)
m2 <- glmer(use ~ age + age2 + urbanY + livch1 + livch2 + livch3plus + (1 + urbanY | district),
            d, binomial, control = ctl)
a <- anova(m0, m1, m2)
out <- list(lme4_version = as.character(packageVersion("lme4")),
            npar = a$npar, AIC = a$AIC, BIC = a$BIC, logLik = a$logLik,
            deviance = a$deviance, Chisq = a$Chisq, Df = a$Df, p = a[["Pr(>Chisq)"]])
write_json(out, "glmer_anova.json", digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")
