# Kenward-Roger references for tests/test_kenward_roger.py: pbkrtest's adjusted
# covariance of the fixed effects (vcovAdj), lmerTest's t-tests with
# ddf = "Kenward-Roger" (summary) and its type III F tests by term (anova).
#
#   cd tests/data/kenward_roger && Rscript make_kr.R
#   (apt-get install r-base-core r-cran-lme4 r-cran-lmertest r-cran-pbkrtest
#    r-cran-nlme r-cran-jsonlite; about 8 minutes, mostly InstEval's department 7)
#
# Every model is fitted by REML, then polished as tests/data/analyses/make_analyses.R
# does (refitted from lme4's theta with much tighter tolerances), so that the
# references sit at the optimum. The data are the CSVs of tests/data/analyses (and
# tests/data/sleepstudy.csv); InstEval's department 7 is written here
# (insteval_dept7.csv).
#
# Per analysis, <name>.json holds: formula, data (CSV path relative to tests/data),
# the polished fit (theta in lme4's order, sigma, fixef, vcov), pbkrtest's vcovAdj,
# lmerTest's summary(ddf = "Kenward-Roger") table, its anova(type = 3, ddf =
# "Kenward-Roger") table with the contrast matrix of each term, pbkrtest's
# KRmodcomp statistics for each term (scaled and unscaled F, F.scaling, ddf), and
# the seconds pbkrtest's vcovAdj took.
suppressMessages({library(lmerTest); library(pbkrtest); library(jsonlite)})

POLISH <- lmerControl(optimizer = "nloptwrap",
                      optCtrl = list(xtol_abs = 1e-13, ftol_abs = 1e-15, xtol_rel = 1e-13,
                                     ftol_rel = 1e-15, maxeval = 1e5))

read_analysis_data <- function(path, json) {
  spec <- fromJSON(json, simplifyVector = FALSE)$columns
  d <- read.csv(path, colClasses = "character")
  for (v in names(spec)) {
    s <- spec[[v]]
    d[[v]] <- switch(s$type,
      factor = factor(d[[v]], levels = unlist(s$levels)),
      ordered = factor(d[[v]], levels = unlist(s$levels), ordered = TRUE),
      integer = as.integer(d[[v]]),
      as.numeric(d[[v]]))
  }
  d[, names(spec)]
}

matrix_list <- function(M) unname(lapply(seq_len(nrow(M)), function(i) unname(M[i, ])))

kr_analysis <- function(name, data_path, data, formula) {
  m0 <- lmerTest::lmer(as.formula(formula), data = data, REML = TRUE)
  m <- suppressWarnings(suppressMessages(lmerTest::lmer(
    as.formula(formula), data = data, REML = TRUE,
    start = getME(m0, "theta"), control = POLISH)))
  t_adj <- system.time(PhiA <- vcovAdj(m))[["elapsed"]]
  PhiA_plain <- as.matrix(PhiA)
  p <- length(fixef(m))
  # lmerTest's summary(ddf = "Kenward-Roger"): per coefficient, se from vcovAdj and
  # pbkrtest's Lb_ddf (get_KR1D); computed once from PhiA (summary would call
  # vcovAdj once per coefficient)
  kr_df <- vapply(seq_len(p), function(i) {
    L <- numeric(p); L[i] <- 1
    pbkrtest::Lb_ddf(L = L, V0 = vcov(m), Vadj = PhiA)
  }, numeric(1))
  coef <- data.frame(Estimate = unname(fixef(m)), SE = sqrt(diag(PhiA_plain)), df = kr_df)
  coef$t <- coef$Estimate / coef$SE
  coef$p <- 2 * pt(abs(coef$t), coef$df, lower.tail = FALSE)
  summary_checked <- FALSE
  if (t_adj < 20) {  # the small ones: lmerTest's own summary says the same
    s <- coef(summary(m, ddf = "Kenward-Roger"))
    stopifnot(isTRUE(all.equal(unname(s[, "df"]), coef$df, tolerance = 1e-12)),
              isTRUE(all.equal(unname(s[, "Std. Error"]), coef$SE, tolerance = 1e-12)))
    summary_checked <- TRUE
  }
  # type III F tests as lmerTest's anova (contestMD -> KRmodcomp) and pbkrtest's raw
  # statistics for the same contrast matrices
  L_list <- lmerTest:::get_contrasts_type3(m)
  terms <- lapply(names(L_list), function(term) {
    L <- L_list[[term]]
    st <- pbkrtest:::.KR_adjust(PhiA, Phi = vcov(m), L, beta = fixef(m), betaH = 0)
    MS <- st$FstatU * sigma(m)^2
    list(term = term, L = matrix_list(L),
         F_scaled = c(st$Fstat), F_unscaled = c(st$FstatU), F_scaling = c(st$F.scaling),
         ndf = c(st$ndf), ddf = c(st$ddf), p_value = c(st$p.value),
         p_value_unscaled = c(st$p.valueU),
         sum_sq = c(MS * st$ndf), mean_sq = c(MS))
  })
  anova_table <- NULL
  if (t_adj < 20) {
    a <- anova(m, type = 3, ddf = "Kenward-Roger")
    for (k in seq_along(terms)) {
      row <- a[terms[[k]]$term, ]
      stopifnot(isTRUE(all.equal(row[["F value"]], terms[[k]]$F_scaled, tolerance = 1e-10)),
                isTRUE(all.equal(row[["DenDF"]], terms[[k]]$ddf, tolerance = 1e-10)),
                isTRUE(all.equal(row[["Mean Sq"]], terms[[k]]$mean_sq, tolerance = 1e-10)))
    }
    anova_table <- list(terms = I(rownames(a)), sum_sq = I(a[["Sum Sq"]]),
                        mean_sq = I(a[["Mean Sq"]]), NumDF = I(a[["NumDF"]]),
                        DenDF = I(a[["DenDF"]]), F_value = I(a[["F value"]]),
                        p_value = I(a[["Pr(>F)"]]))
  }
  out <- list(
    name = name, data = data_path, formula = formula, n = nrow(data),
    pbkrtest_version = as.character(packageVersion("pbkrtest")),
    lmerTest_version = as.character(packageVersion("lmerTest")),
    lme4_version = as.character(packageVersion("lme4")),
    r_version = R.version.string,
    theta = I(unname(getME(m, "theta"))), theta_names = I(names(getME(m, "theta"))),
    sigma = sigma(m), reml_criterion = unname(getME(m, "devcomp")$cmp[["REML"]]),
    is_singular = isSingular(m),
    fixef = list(names = I(names(fixef(m))), estimate = I(unname(fixef(m)))),
    vcov = matrix_list(as.matrix(vcov(m))),
    vcov_adj = matrix_list(PhiA_plain),
    kr_summary = list(estimate = I(coef$Estimate), se = I(coef$SE), df = I(coef$df),
                      t_value = I(coef$t), p_value = I(coef$p),
                      checked_against_summary = summary_checked),
    kr_anova_type3 = anova_table,
    kr_terms = terms,
    vcovAdj_seconds = t_adj
  )
  writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
             paste0(name, ".json"))
  cat(sprintf("%-20s n=%5d vcovAdj %.2f s; KR df %s\n", name, nrow(data), t_adj,
              paste(sprintf("%.3f", coef$df), collapse = " ")))
}

A <- "../analyses/"
an <- function(stem, json = stem) read_analysis_data(paste0(A, stem, ".csv"), paste0(A, json, ".json"))

kr_analysis("oats", "analyses/oats.csv", an("oats"),
            "yield ~ nitro * Variety + (1 | Block/Variety)")
kr_analysis("orthodont", "analyses/orthodont.csv", an("orthodont"),
            "distance ~ age * Sex + (age | Subject)")
kr_analysis("cake", "analyses/cake.csv", an("cake"),
            "angle ~ recipe * temperature + (1 | recipe:replicate)")
kr_analysis("chickweight_poly", "analyses/chickweight.csv", an("chickweight", "chickweight_poly"),
            "weight ~ poly(Time, 2) * Diet + (poly(Time, 2) | Chick)")
kr_analysis("chickweight_linear", "analyses/chickweight.csv", an("chickweight", "chickweight_linear"),
            "weight ~ Time * Diet + (1 + Time | Chick)")
kr_analysis("machines", "analyses/machines.csv", an("machines"),
            "score ~ Machine + (1 | Worker/Machine)")
sleep <- read.csv("../sleepstudy.csv", colClasses = c("numeric", "numeric", "character"))
sleep$Subject <- factor(sleep$Subject, levels = unique(sleep$Subject))
kr_analysis("sleepstudy_uncorrelated", "sleepstudy.csv", sleep,
            "Reaction ~ Days + (Days || Subject)")

# InstEval's department 7 (lme4::InstEval, dept == "7"), levels dropped
inst <- droplevels(subset(lme4::InstEval, dept == "7")[, c("y", "service", "s", "d")])
write.csv(inst, "insteval_dept7.csv", row.names = FALSE)
inst_r <- read.csv("insteval_dept7.csv", colClasses = c("numeric", "character", "character", "character"))
inst_r$service <- factor(inst_r$service, levels = levels(inst$service))
inst_r$s <- factor(inst_r$s, levels = levels(inst$s))
inst_r$d <- factor(inst_r$d, levels = levels(inst$d))
kr_analysis("insteval_dept7", "kenward_roger/insteval_dept7.csv", inst_r,
            "y ~ service + (1 | s) + (1 | d)")
