# Golden references for skmixed/_formula.py: R's model.matrix and lme4's lFormula.
#
#   cd tests/data/formula && Rscript make_model_matrices.R
#
# writes model_matrices.json: the data sets (column types and levels), and per case
# the one-sided formula, R's column names and matrix on the training data, and the
# matrix for new rows built as predict() builds it (the training terms carry the
# poly/scale coefficients through makepredictcall); plus lme4's grouping factors
# (names and levels of lFormula(...)$reTrms$flist) and random-term column names.
suppressMessages({library(lme4); library(jsonlite)})

oats <- nlme::Oats
oats <- data.frame(
  yield = oats$yield, nitro = oats$nitro,
  Variety = as.character(oats$Variety),  # a string column: sorted levels
  Block = factor(as.character(oats$Block), levels = c("I", "II", "III", "IV", "V", "VI"))
)
cw <- as.data.frame(ChickWeight)
cw <- cw[cw$Chick %in% c("1", "2", "21", "22", "31", "32", "41", "42"), ]
chick <- data.frame(weight = cw$weight, Time = cw$Time,
                    Chick = as.character(cw$Chick), Diet = factor(as.character(cw$Diet)))
set.seed(20240611)
n <- 40
misc <- data.frame(
  y = rnorm(n), x = round(runif(n, 0.5, 5), 3), z = round(rnorm(n), 3),
  temperature = factor(sample(c("cold", "cool", "mild", "warm", "hot"), n, TRUE),
                       levels = c("cold", "cool", "mild", "warm", "hot"), ordered = TRUE),
  flag = rep(c(TRUE, FALSE, FALSE, TRUE), 10),
  Sex = factor(rep(c("Male", "Female"), 20), levels = c("Male", "Female")),
  a = factor(rep(c("p", "q", "r"), length.out = n)),
  b = factor(rep(c("u", "v"), each = 2, length.out = n)),
  c = factor(rep(c("s", "t"), each = 5, length.out = n))
)
datasets <- list(oats = oats, chick = chick, misc = misc)
newdata <- list(
  oats = data.frame(nitro = c(0.1, 0.5, 0.8), Variety = c("Victory", "Golden Rain", "Marvellous"),
                    Block = factor(c("II", "VI", "I"), levels = levels(oats$Block))),
  chick = data.frame(Time = c(1, 5, 13, 30), Chick = c("1", "2", "99", "21"),
                     Diet = factor(c("4", "1", "2", "3"), levels = levels(chick$Diet))),
  misc = misc[c(3, 7, 11), ]
)
newdata$misc$x <- c(0.7, 6.5, 2.25)
newdata$misc$z <- c(-2.5, 0, 3.1)

cases <- list(
  oats_interaction = c("oats", "nitro * Variety"),
  oats_colon = c("oats", "nitro:Variety"),
  oats_no_intercept = c("oats", "0 + Variety + nitro"),
  oats_minus_one = c("oats", "Variety + Block - 1"),
  oats_factor_interaction = c("oats", "Variety * Block"),
  chick_poly_diet = c("chick", "poly(Time, 2) * Diet"),
  chick_poly3 = c("chick", "poly(Time, 3)"),
  chick_I = c("chick", "Time + I(Time^2)"),
  chick_diet_time = c("chick", "Diet:Time"),
  misc_math = c("misc", "log(x) + sqrt(x) + exp(z) + log(x, 2) + abs(z)"),
  misc_scale = c("misc", "scale(x) + scale(z, scale = FALSE)"),
  misc_ordered = c("misc", "temperature"),
  misc_ordered_x = c("misc", "x * temperature"),
  misc_logical = c("misc", "flag + Sex"),
  misc_logical_expr = c("misc", "I(z > 0) + flag:x"),
  misc_sum = c("misc", "C(a, contr.sum)"),
  misc_sum_short = c("misc", "C(a, sum) + C(temperature, sum)"),
  misc_helmert = c("misc", "C(temperature, contr.helmert)"),
  misc_poly_contrast = c("misc", "C(a, contr.poly)"),
  misc_treatment = c("misc", "C(temperature, contr.treatment)"),
  misc_threeway = c("misc", "a * b * c"),
  misc_power = c("misc", "(a + b + c)^2"),
  misc_nested = c("misc", "a/b"),
  misc_order = c("misc", "b + a + a:b"),
  misc_colon_only = c("misc", "a:b"),
  misc_colon_main = c("misc", "a:b + a"),
  misc_no_intercept_colon = c("misc", "0 + x:a + b"),
  misc_two_colons = c("misc", "a:b + a:x"),
  misc_factor_call = c("misc", "factor(flag) + poly(x, 2):Sex"),
  misc_raw_poly = c("misc", "poly(x, 2, raw = TRUE)")
)

matrix_of <- function(rhs, data, new) {
  f <- as.formula(paste("~", rhs))
  mf <- model.frame(f, data)
  X <- model.matrix(f, mf)
  tt <- attr(mf, "terms")  # carries predvars: training poly / scale parameters
  xlev <- .getXlevels(tt, mf)  # as predict.lm; C() factors keep their contrasts
  xlev <- xlev[!startsWith(names(xlev), "C(")]
  Xnew <- model.matrix(tt, model.frame(tt, new, xlev = xlev))
  list(colnames = colnames(X), matrix = unname(X), new_matrix = unname(Xnew))
}
out_cases <- lapply(names(cases), function(name) {
  spec <- cases[[name]]
  r <- matrix_of(spec[2], datasets[[spec[1]]], newdata[[spec[1]]])
  c(list(name = name, data = spec[1], formula = spec[2]), r)
})

column_spec <- function(v) {
  if (is.ordered(v)) list(type = "ordered", levels = levels(v), values = as.character(v))
  else if (is.factor(v)) list(type = "factor", levels = levels(v), values = as.character(v))
  else if (is.logical(v)) list(type = "logical", values = v)
  else if (is.character(v)) list(type = "character", values = v)
  else list(type = "numeric", values = v)
}
frame_spec <- function(d) lapply(d, column_spec)

lme4_cases <- list(
  c("oats", "yield ~ nitro * Variety + (1 | Block/Variety)"),
  c("oats", "yield ~ nitro + (1 | Variety:Block) + (1 | Block)"),
  c("chick", "weight ~ Time + (1 + Diet | Chick)"),
  c("chick", "weight ~ Time + (0 + Diet | Chick)"),
  c("chick", "weight ~ Time + (poly(Time, 2) | Chick)"),
  c("chick", "weight ~ Time + (Time || Chick)"),
  c("misc", "y ~ x + (1 | a/b/c)")
)
ctrl <- lmerControl(check.nobs.vs.nRE = "ignore", check.nobs.vs.nlev = "ignore",
                    check.nlev.gtr.1 = "ignore", check.nlev.gtreq.5 = "ignore",
                    check.rankX = "ignore", check.scaleX = "ignore")
out_lme4 <- lapply(lme4_cases, function(spec) {
  lf <- lFormula(as.formula(spec[2]), datasets[[spec[1]]], control = ctrl)
  list(data = spec[1], formula = spec[2],
       flist = lapply(lf$reTrms$flist, levels),
       flist_names = names(lf$reTrms$flist),
       cnms = unname(lf$reTrms$cnms), cnms_groups = names(lf$reTrms$cnms))
})

writeLines(toJSON(list(
  r_version = R.version.string, lme4_version = as.character(packageVersion("lme4")),
  data = lapply(datasets, frame_spec), newdata = lapply(newdata, frame_spec),
  cases = out_cases, lme4 = out_lme4
), digits = NA, auto_unbox = FALSE, na = "null", pretty = FALSE), "model_matrices.json")
