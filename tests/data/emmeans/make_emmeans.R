# emmeans / performance references for tests/test_marginal_means.py and
# tests/test_r_squared.py: marginal means and contrasts (emmeans, with
# lmer.df = "satterthwaite" and "kenward-roger"), Nakagawa's R2
# (performance::r2_nakagawa) and the ICC (performance::icc) of lmer fits.
#
#   cd tests/data/emmeans && Rscript make_emmeans.R
#   (apt-get install r-cran-lme4 r-cran-nlme r-cran-emmeans r-cran-pbkrtest
#    r-cran-lmertest r-cran-performance r-cran-jsonlite)
#
# The data are the CSVs of tests/data/analyses (made from the same R data sets by
# make_analyses.R) and tests/data/biomass.csv (R2 and ICC of a random slope); each analysis is refitted by REML and polished as there (the
# default fit's theta refitted with nloptwrap at much tighter tolerances), so
# that the references are those of the optimum.  One JSON per analysis: the
# formula, the columns (type, levels in R's order), the polished fit, and per
# emmeans call its specs/at, the reference grid's linear functions (linfct) and
# the summary per df method; per contrast call the method, adjust and summary.
suppressMessages({
  library(lme4); library(nlme); library(jsonlite); library(emmeans)
  library(pbkrtest); library(lmerTest); library(performance)
})

POLISH <- lmerControl(optimizer = "nloptwrap",
                      optCtrl = list(xtol_abs = 1e-13, ftol_abs = 1e-15, xtol_rel = 1e-13,
                                     ftol_rel = 1e-15, maxeval = 1e5))

column_spec <- function(x) {
  if (is.ordered(x)) list(type = "ordered", levels = I(levels(x)))
  else if (is.factor(x)) list(type = "factor", levels = I(levels(x)))
  else list(type = "numeric")
}

polished_fit <- function(formula, data) {
  m0 <- lme4::lmer(as.formula(formula), data = data, REML = TRUE)
  lme4::lmer(as.formula(formula), data = data, REML = TRUE,
             start = getME(m0, "theta"), control = POLISH)
}

DF_METHODS <- c(satterthwaite = "satterthwaite", "kenward-roger" = "kenward-roger")

emm_table <- function(emm) {
  s <- as.data.frame(summary(emm))
  factors <- setdiff(names(s), c("emmean", "SE", "df", "lower.CL", "upper.CL"))
  list(levels = lapply(s[factors], function(v) I(as.character(v))),
       estimate = I(s$emmean), std_error = I(s$SE), df = I(s$df),
       lower = I(s$lower.CL), upper = I(s$upper.CL),
       printed = I(capture.output(print(summary(emm)))))
}

# adjust: what was asked; messages: emmeans' notes (the adjustment used)
contrast_table <- function(con) {
  summ <- summary(con)
  s <- as.data.frame(summ)
  list(label = I(as.character(s$contrast)), estimate = I(s$estimate),
       std_error = I(s$SE), df = I(s$df), t_value = I(s$t.ratio), p_value = I(s$p.value),
       adjust = con@misc$adjust, messages = I(as.character(attr(summ, "mesg"))),
       printed = I(capture.output(print(summ))))
}

# one emmeans call: specs (character), at (list or NULL), by (character or
# NULL), contrasts: list of list(method, adjust)
emm_call <- function(m, specs, at = NULL, by = NULL, contrasts = list()) {
  by_df <- lapply(DF_METHODS, function(mode) {
    emm <- if (is.null(at)) emmeans(m, specs, by = by, lmer.df = mode)
           else emmeans(m, specs, by = by, at = at, lmer.df = mode)
    list(emm = emm, table = emm_table(emm))
  })
  emm <- by_df[[1]]$emm
  list(
    specs = I(specs), at = at, by = if (is.null(by)) NULL else I(by),
    linfct = unname(emm@linfct), linfct_names = I(colnames(emm@linfct)),
    grid = lapply(emm@grid[c(specs, by)], function(v) I(as.character(v))),
    means = lapply(by_df, function(x) x$table),
    contrasts = lapply(contrasts, function(k) {
      ref <- if (is.null(k$ref)) 1 else k$ref  # trt.vs.ctrl's control (1-based)
      tables <- lapply(by_df, function(x)
        contrast_table(contrast(x$emm, method = k$method, adjust = k$adjust, ref = ref)))
      con <- contrast(emm, method = k$method, adjust = k$adjust, ref = ref)
      list(method = k$method, adjust = k$adjust, ref = ref,
           coefficients = unname(con@linfct), results = tables)
    })
  )
}

ALL_ADJUST <- lapply(c("tukey", "bonferroni", "holm", "none"),
                     function(a) list(method = "pairwise", adjust = a))

# data_file: the CSV of the data, relative to tests/data
analysis <- function(name, data_file, data, formula, calls = list()) {
  m <- polished_fit(formula, data)
  r2 <- r2_nakagawa(m)
  ic <- icc(m)
  vars <- insight::get_variance(m)
  out <- list(
    name = name, data = data_file, formula = formula, n = nrow(data),
    columns = lapply(data, column_spec),
    fit = list(fixef = list(names = I(names(fixef(m))), estimate = I(unname(fixef(m)))),
               theta = I(unname(getME(m, "theta"))), sigma = sigma(m),
               criterion = unname(getME(m, "devcomp")$cmp[["REML"]])),
    r2_nakagawa = list(marginal = unname(r2$R2_marginal), conditional = unname(r2$R2_conditional)),
    icc = list(adjusted = ic$ICC_adjusted, unadjusted = ic$ICC_unadjusted),
    variance = list(fixed = vars$var.fixed, random = vars$var.random,
                    residual = vars$var.residual),
    emmeans = lapply(calls, function(k) emm_call(m, k$specs, k$at, k$by, k$contrasts)),
    versions = list(R = R.version.string,
                    lme4 = as.character(packageVersion("lme4")),
                    emmeans = as.character(packageVersion("emmeans")),
                    pbkrtest = as.character(packageVersion("pbkrtest")),
                    lmerTest = as.character(packageVersion("lmerTest")),
                    performance = as.character(packageVersion("performance")),
                    insight = as.character(packageVersion("insight")))
  )
  writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
             paste0(name, ".json"))
  cat(sprintf("%-12s R2 = %.6f / %.6f  ICC = %.6f / %.6f  %d emmeans calls\n", name,
              out$r2_nakagawa$marginal, out$r2_nakagawa$conditional,
              out$icc$adjusted, out$icc$unadjusted, length(calls)))
}

# 1. nlme's Oats, nitro numeric (its mean 0.3 in the grid, or fixed by `at`)
oats <- as.data.frame(nlme::Oats)[, c("yield", "nitro", "Variety", "Block")]
class(oats) <- "data.frame"
analysis("oats", "analyses/oats.csv", oats, "yield ~ nitro * Variety + (1 | Block/Variety)", list(
  list(specs = "Variety",
       contrasts = c(ALL_ADJUST, list(list(method = "trt.vs.ctrl", adjust = "none"),
                                      list(method = "trt.vs.ctrl", adjust = "bonferroni")))),
  list(specs = "Variety", at = list(nitro = 0.6),
       contrasts = list(list(method = "pairwise", adjust = "tukey")))))

# 2. Oats with nitro a factor (levels 0, 0.2, 0.4, 0.6: numeric labels, which
# emmeans prefixes with the factor's name in contrasts)
oats_f <- oats
oats_f$nitro <- factor(oats_f$nitro)
analysis("oats_factor", "analyses/oats.csv", oats_f, "yield ~ nitro * Variety + (1 | Block/Variety)", list(
  list(specs = "nitro",
       contrasts = c(ALL_ADJUST, list(list(method = "poly", adjust = "none"),
                                      list(method = "trt.vs.ctrl", adjust = "tukey"),
                                      list(method = "trt.vs.ctrl", adjust = "holm")))),
  list(specs = "Variety", contrasts = ALL_ADJUST),
  list(specs = c("nitro", "Variety"),
       contrasts = list(list(method = "pairwise", adjust = "tukey"),
                        list(method = "pairwise", adjust = "holm"))),
  list(specs = "Variety", by = "nitro",
       contrasts = list(list(method = "pairwise", adjust = "tukey"),
                        list(method = "pairwise", adjust = "bonferroni")))))

# 2b. Oats (nitro a factor) without the cell Victory x 0.6: the model matrix is
# rank deficient (nitro0.6:VarietyVictory dropped); the means and contrasts
# that involve the empty cell are not estimable (emmeans' nonEst)
oats_cell <- oats_f[!(oats_f$Variety == "Victory" & oats_f$nitro == "0.6"), ]
write.csv(oats_cell, "oats_missing_cell.csv", row.names = FALSE)
analysis("oats_missing_cell", "emmeans/oats_missing_cell.csv", oats_cell,
         "yield ~ nitro * Variety + (1 | Block/Variety)", list(
  list(specs = "Variety", contrasts = list(list(method = "pairwise", adjust = "tukey"),
                                           list(method = "pairwise", adjust = "holm"))),
  list(specs = c("nitro", "Variety"))))

# 2c. Oats with factor(nitro) in the formula (nitro numeric in the data): emmeans
# keeps nitro's numbers in the grid; revpairwise, and each level against 0.4
# with emmeans' default for trt.vs.ctrl (dunnettx)
analysis("oats_coerced", "analyses/oats.csv", oats,
         "yield ~ factor(nitro) * Variety + (1 | Block/Variety)", list(
  list(specs = "nitro",
       contrasts = list(list(method = "revpairwise", adjust = "tukey"),
                        list(method = "trt.vs.ctrl", adjust = "dunnettx", ref = 3))),
  list(specs = "Variety", by = "nitro",
       contrasts = list(list(method = "trt.vs.ctrl", adjust = "dunnettx")))))

# 3. nlme's Orthodont: random slopes; age at its mean (11) or fixed
orthodont <- as.data.frame(nlme::Orthodont)[, c("distance", "age", "Subject", "Sex")]
class(orthodont) <- "data.frame"
analysis("orthodont", "analyses/orthodont.csv", orthodont, "distance ~ age * Sex + (age | Subject)", list(
  list(specs = "Sex", contrasts = list(list(method = "pairwise", adjust = "tukey"))),
  list(specs = "Sex", at = list(age = 14),
       contrasts = list(list(method = "pairwise", adjust = "none")))))

# 4. lme4's cake: temperature ordered (poly contrasts in the model matrix)
cake <- lme4::cake[, c("angle", "recipe", "temperature", "replicate")]
analysis("cake", "analyses/cake.csv", cake, "angle ~ recipe * temperature + (1 | recipe:replicate)", list(
  list(specs = "recipe", contrasts = ALL_ADJUST),
  list(specs = "temperature",
       contrasts = c(ALL_ADJUST, list(list(method = "poly", adjust = "none"),
                                      list(method = "trt.vs.ctrl", adjust = "bonferroni")))),
  list(specs = c("recipe", "temperature"),
       contrasts = list(list(method = "pairwise", adjust = "tukey"))),
  list(specs = "temperature", by = "recipe",
       contrasts = list(list(method = "poly", adjust = "none"),
                        list(method = "trt.vs.ctrl", adjust = "holm")))))

# 5. ChickWeight: a polynomial in Time (its mean in the grid, or fixed by `at`)
chick <- as.data.frame(ChickWeight)[, c("weight", "Time", "Chick", "Diet")]
class(chick) <- "data.frame"
chick$Chick <- factor(chick$Chick, ordered = FALSE)
analysis("chickweight", "analyses/chickweight.csv", chick, "weight ~ poly(Time, 2) * Diet + (1 | Chick)", list(
  list(specs = "Diet",
       contrasts = c(ALL_ADJUST, list(list(method = "trt.vs.ctrl", adjust = "none")))),
  list(specs = "Diet", at = list(Time = 21),
       contrasts = list(list(method = "pairwise", adjust = "tukey")))))

# 6. the tutorial's biomass data: R2 and ICC with a correlated random slope
biomass <- read.csv("../biomass.csv", colClasses = c(Site = "character"))
biomass$Site <- factor(biomass$Site, levels = unique(biomass$Site))
analysis("biomass", "biomass.csv", biomass, "Biomass ~ Temp + N + (1 + Temp | Site)")

# 7. sleepstudy with a random slope that is not a fixed effect: insight leaves
# it out of the random-effect variance (and warns)
sleep <- read.csv("../sleepstudy.csv", colClasses = c(Subject = "character"))
sleep$Subject <- factor(sleep$Subject)
analysis("sleepstudy_slope_only", "sleepstudy.csv", sleep, "Reaction ~ 1 + (Days | Subject)")
