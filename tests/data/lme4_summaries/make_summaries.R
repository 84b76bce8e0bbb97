# Regenerates lme4's printed summaries of the reference fits (../<case>.json),
# the golden output of tests/test_summary.py.
#   Rscript make_summaries.R   (from this folder; needs lme4, lmerTest, jsonlite)
# The models are those of ../make_reference.R (same data, same formulas), so
# the printed numbers are those of the JSON files.  skmixed names the
# intercept "Intercept" where lme4 writes "(Intercept)": the summary objects
# are renamed before printing so that the layouts compare column for column.
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
options(width = 80, digits = 7)
cases <- c("biomass", "sleepstudy", "sleepstudy_uncorrelated", "sleepstudy_intercept",
           "dyestuff", "dyestuff2", "penicillin", "pastes")
rename <- function(x) sub("(Intercept)", "Intercept", x, fixed = TRUE)
for (case in cases) {
  spec <- fromJSON(file.path("..", paste0(case, ".json")))
  d <- read.csv(file.path("..", paste0(case, ".csv")))
  for (g in sapply(spec$random$group, identity)) d[[g]] <- factor(d[[g]])
  f <- as.formula(spec$formula)
  for (reml in c(TRUE, FALSE)) {
    m <- suppressMessages(lmer(f, data = d, REML = reml))
    s <- summary(m)
    rownames(s$coefficients) <- rename(rownames(s$coefficients))
    for (i in seq_along(s$varcor)) {
      v <- s$varcor[[i]]
      dimnames(v) <- lapply(dimnames(v), rename)
      for (a in c("stddev", "correlation")) {
        if (!is.null(attr(v, a))) {
          if (is.null(dim(attr(v, a)))) names(attr(v, a)) <- rename(names(attr(v, a)))
          else dimnames(attr(v, a)) <- lapply(dimnames(attr(v, a)), rename)
        }
      }
      s$varcor[[i]] <- v
    }
    out <- capture.output(print(s))
    # The title and formula lines name R objects: keep from the criterion on.
    start <- grep("^(REML criterion|     AIC)", out)[1]
    writeLines(out[start:length(out)],
               paste0(case, "_", if (reml) "REML" else "ML", ".txt"))
  }
}
