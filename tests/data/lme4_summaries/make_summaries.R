# Regenerates lme4's printed summaries of the reference fits (../<case>.json),
# the golden output of tests/test_summary.py.
#   Rscript make_summaries.R   (from this folder; needs lme4, lmerTest, jsonlite)
# skmixed names the intercept "Intercept" where lme4 writes "(Intercept)"; so
# that the layouts are comparable column for column, each model is fitted
# with an explicit constant column named Intercept (the same model:
# y ~ 0 + Intercept + x + (0 + Intercept + x | g)).
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
options(width = 80, digits = 7)
cases <- c("biomass", "sleepstudy", "sleepstudy_uncorrelated", "sleepstudy_intercept",
           "dyestuff", "dyestuff2", "penicillin", "pastes")
as_vec <- function(x) if (is.null(x) || length(x) == 0) character(0) else unlist(x)
for (case in cases) {
  spec <- fromJSON(file.path("..", paste0(case, ".json")), simplifyVector = FALSE)
  d <- read.csv(file.path("..", paste0(case, ".csv")))
  d$Intercept <- 1
  fixed <- c("0", "Intercept", as_vec(spec$fixed_columns))
  random <- sapply(spec$random, function(r) {
    cols <- as_vec(r$columns)
    bar <- if (isTRUE(r$correlated) || length(cols) == 1) "|" else "||"
    sprintf("(0 + %s %s %s)", paste(cols, collapse = " + "), bar, r$group)
  })
  f <- as.formula(paste(spec$response, "~", paste(c(fixed, random), collapse = " + ")))
  for (reml in c(TRUE, FALSE)) {
    m <- suppressMessages(lmer(f, data = d, REML = reml))
    out <- capture.output(print(summary(m)))
    # The title and formula lines name R objects: keep from the criterion on.
    start <- grep("^(REML criterion|     AIC)", out)[1]
    writeLines(out[start:length(out)],
               paste0(case, "_", if (reml) "REML" else "ML", ".txt"))
  }
}
