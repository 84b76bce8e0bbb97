# lmerTest references for tests/test_anova_terms.py and tests/test_ranova.py:
# F-tests by term (anova, type III and I; Satterthwaite and Kenward-Roger),
# drop1 and ranova, on analyses with factors, interactions and a polynomial.
#
#   cd tests/data/anova && Rscript make_anova.R
#   (r-cran-lmertest 3.1-3, r-cran-pbkrtest, r-cran-nlme, r-cran-jsonlite)
#
# The data are the CSVs of tests/data/analyses (made by make_analyses.R from the
# same R sources) and tests/data/biomass.csv.  Each model is fitted by
# lmerTest::lmer with the POLISH control of make_analyses.R (nloptwrap run to
# much tighter tolerances), so that the references are at the optimum: the
# degrees of freedom are derivatives of the criterion there.  ranova's refits
# use the same control (update() keeps it).  Writes one <name>.json per model.
suppressMessages({library(lmerTest); library(nlme); library(jsonlite)})

POLISH <- lmerControl(optimizer = "nloptwrap",
                      optCtrl = list(xtol_abs = 1e-13, ftol_abs = 1e-15, xtol_rel = 1e-13,
                                     ftol_rel = 1e-15, maxeval = 1e5))

table_json <- function(tab) {
  tab <- as.data.frame(tab)
  cols <- lapply(tab, function(x) { x <- unname(as.numeric(x)); as.list(ifelse(is.na(x), NA, x)) })
  list(rows = I(rownames(tab)), columns = cols)
}

model_json <- function(name, data, formula, reml = TRUE, kr = reml, data_name = name) {
  m <- eval(bquote(lmer(.(as.formula(formula)), data = data, REML = .(reml),
                        control = POLISH)))
  out <- list(
    name = name, data = data_name, formula = formula, method = if (reml) "REML" else "ML",
    lmerTest_version = as.character(packageVersion("lmerTest")),
    lme4_version = as.character(packageVersion("lme4")),
    pbkrtest_version = as.character(packageVersion("pbkrtest")),
    criterion = unname(if (reml) getME(m, "devcomp")$cmp[["REML"]] else deviance(m)),
    fixef = list(names = I(names(fixef(m))), estimate = I(unname(fixef(m)))),
    theta = I(unname(getME(m, "theta"))),
    anova3 = table_json(anova(m, type = 3)),
    anova1 = table_json(anova(m, type = 1)),
    drop1 = table_json(drop1(m)),
    ranova = table_json(ranova(m))
  )
  if (kr) {
    out$anova3_kr <- table_json(anova(m, type = 3, ddf = "Kenward-Roger"))
    out$anova1_kr <- table_json(anova(m, type = 1, ddf = "Kenward-Roger"))
    out$drop1_kr <- table_json(drop1(m, ddf = "Kenward-Roger"))
  }
  writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
             paste0(name, ".json"))
  cat(name, out$method, "\n"); print(anova(m)); print(ranova(m))
}

read_analysis <- function(name) {
  spec <- fromJSON(file.path("..", "analyses", paste0(name, ".json")))
  path <- file.path("..", "analyses", paste0(spec$data, ".csv"))
  raw <- read.csv(path, colClasses = "character")
  for (v in names(spec$columns)) {
    s <- spec$columns[[v]]
    raw[[v]] <- if (s$type %in% c("factor", "ordered"))
      factor(raw[[v]], levels = s$levels, ordered = s$type == "ordered") else as.numeric(raw[[v]])
  }
  raw
}

oats <- read_analysis("oats")
model_json("oats", oats, "yield ~ nitro * Variety + (1 | Block/Variety)")
model_json("oats_ml", oats, "yield ~ nitro * Variety + (1 | Block/Variety)", reml = FALSE,
           data_name = "oats")
model_json("orthodont", read_analysis("orthodont"), "distance ~ age * Sex + (age | Subject)")
# temperature is an ordered factor: contr.poly, mapped to type III contrasts
model_json("cake", read_analysis("cake"), "angle ~ recipe * temperature + (1 | recipe:replicate)")
chick <- read_analysis("chickweight_poly")
model_json("chickweight", chick, "weight ~ poly(Time, 2) * Diet + (1 + Time | Chick)",
           data_name = "chickweight")
biomass <- read.csv(file.path("..", "biomass.csv"))
model_json("biomass", biomass, "Biomass ~ Temp + N + (1 + Temp | Site)")
# uncorrelated terms: ranova reduces (0 + Temp | Site) to (1 | Site), which
# lme4 then has twice (and keeps once)
model_json("biomass_diagonal", biomass, "Biomass ~ Temp + N + (1 + Temp || Site)")
