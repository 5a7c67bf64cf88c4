#!/usr/bin/env Rscript
## Reference maximum-likelihood fits of R nlme to the Theoph and Phenobarb data, written to
## tests/reference/pk_nlme.json. Cross-check recipe only: carkin never needs R.
##
## Run from the repository root (about 2 min, mostly the book covariate model failing to converge):
##     Rscript benchmarks/peers/r/nlme_reference.R                 # writes tests/reference/pk_nlme.json
##     Rscript benchmarks/peers/r/nlme_reference.R OUT.json
## Needs R >= 4.0 and nlme (Debian: r-base-core r-cran-nlme). No other package.
##
## What it does
## 1. Fits the models of Pinheiro & Bates (2000), Mixed-Effects Models in S and S-PLUS (Springer,
##    ISBN 978-0-387-98957-0), with the calls of the book's own scripts shipped in nlme
##    (system.file("scripts", package = "nlme"): ch08.R for Theoph, sec. 8.2 of the book;
##    ch06.R for Phenobarb, sec. 6.4), all by maximum likelihood (nlme's default, method = "ML", which
##    is what the book used for every nlme fit), to the data sets as shipped with R.
## 2. Rebuilds both data sets from carkin's CSV files (src/carkin/_data/...), checks that they equal
##    R's value by value, refits every model to them, and records the largest differences (the export
##    is faithful when these are 0 or at rounding level).
## 3. Compares the estimates with the values that nlme's maintainers print for the same book scripts
##    (nlme sources, tests/extras/scripts.Rout.save, nlme 3.1-169, 3 significant digits) and with the
##    fm1Pheno.nlme estimates that the book's ch06.R uses as start values (-5.0935, 0.34259).

suppressPackageStartupMessages(library(nlme))
options(contrasts = c(unordered = "contr.treatment", ordered = "contr.poly"))

args <- commandArgs(trailingOnly = TRUE)
out_path <- if (length(args) >= 1) args[[1]] else file.path("tests", "reference", "pk_nlme.json")
data_root <- file.path("src", "carkin", "_data")
theo_csv <- file.path(data_root, "theophylline", "theophylline.csv")
pheno_csv <- file.path(data_root, "phenobarbital", "phenobarbital.csv")

## ---------------------------------------------------------------- a small JSON writer (base R only)
json_str <- function(s) {
  s <- gsub("\\", "\\\\", s, fixed = TRUE)
  s <- gsub("\"", "\\\"", s, fixed = TRUE)
  s <- gsub("\n", "\\n", s, fixed = TRUE)
  paste0("\"", s, "\"")
}
json_atom <- function(v) {
  if (is.na(v)) return("null")
  if (is.logical(v)) return(if (v) "true" else "false")
  if (is.character(v)) return(json_str(v))
  if (is.integer(v)) return(as.character(v))
  if (!is.finite(v)) return("null")
  sprintf("%.15g", v)
}
to_json <- function(x, indent = 0) {
  pad <- strrep("  ", indent + 1)
  end <- strrep("  ", indent)
  if (is.list(x)) {
    if (length(x) == 0) return(if (is.null(names(x))) "[]" else "{}")
    items <- vapply(x, to_json, "", indent = indent + 1)
    if (!is.null(names(x)))
      return(paste0("{\n", paste0(pad, json_str(names(x)), ": ", items, collapse = ",\n"), "\n", end, "}"))
    return(paste0("[\n", paste0(pad, items, collapse = ",\n"), "\n", end, "]"))
  }
  if (is.factor(x)) x <- as.character(x)
  if (length(x) == 1 && !inherits(x, "AsIs") && is.null(names(x))) return(json_atom(x))
  if (!is.null(names(x))) return(to_json(as.list(x), indent))
  paste0("[", paste(vapply(seq_along(x), function(i) json_atom(x[[i]]), ""), collapse = ", "), "]")
}

## ---------------------------------------------------------------- fitting helpers
## Run a fit, keeping its warnings (e.g. fm1Theo.nlme's "nlminb() did not converge" at one iteration).
fit_with_warnings <- function(expr) {
  warns <- character(0)
  value <- withCallingHandlers(tryCatch(expr, error = function(e) e),
                               warning = function(w) {
                                 warns <<- c(warns, conditionMessage(w))
                                 invokeRestart("muffleWarning")
                               })
  ## the same warning at many iterations is kept once, with its count
  base <- sub("^Iteration [0-9]+, ", "", trimws(warns))
  tab <- table(factor(base, levels = unique(base)))
  list(fit = value, warnings = if (length(tab) == 0) character(0) else
    ifelse(tab > 1, sprintf("%s (%d iterations)", names(tab), as.integer(tab)),
           trimws(warns)[match(names(tab), base)]))
}

named <- function(v) as.list(v)

## Everything the JSON records about one fit.
describe_fit <- function(fm, warnings) {
  tt <- summary(fm)$tTable
  sigma <- fm$sigma
  re <- fm$modelStruct$reStruct[[1]]
  cov_re <- as.matrix(re) * sigma^2  # variance-covariance of the random effects
  sds <- sqrt(diag(cov_re))
  cors <- list()
  if (!inherits(re, "pdDiag") && ncol(cov_re) > 1) {
    cm <- cov2cor(cov_re)
    for (i in 1:(ncol(cm) - 1)) for (j in (i + 1):ncol(cm))
      cors[[paste0(colnames(cm)[i], ",", colnames(cm)[j])]] <- cm[i, j]
  }
  ll <- logLik(fm)
  blups <- ranef(fm)
  ids <- rownames(blups)
  ord <- order(as.numeric(ids))
  blup_list <- lapply(colnames(blups), function(p) I(unname(blups[ord, p])))
  names(blup_list) <- colnames(blups)
  list(
    method = if (fm$method == "ML") "ML" else fm$method,
    warnings = I(unname(warnings)),
    iterations = fm$numIter,
    n_observations = as.integer(fm$dims$N),
    n_groups = as.integer(fm$dims$ngrps[[1]]),
    fixed_effects = list(
      estimate = named(tt[, "Value"]),
      std_error = named(tt[, "Std.Error"])
    ),
    random_effects = list(
      structure = class(re)[1],
      sd = named(sds),
      correlation = cors,
      covariance = lapply(seq_len(nrow(cov_re)), function(i) I(unname(cov_re[i, ])))
    ),
    residual_sd = sigma,
    log_likelihood = as.numeric(ll),
    df = as.integer(attr(ll, "df")),
    AIC = AIC(fm),
    BIC = BIC(fm),
    blups = list(ID = I(as.integer(ids[ord])), values = blup_list)
  )
}

max_abs_diff <- function(a, b) {
  fa <- unlist(a[c("fixed_effects", "random_effects", "residual_sd", "log_likelihood", "blups")])
  fb <- unlist(b[c("fixed_effects", "random_effects", "residual_sd", "log_likelihood", "blups")])
  fa <- suppressWarnings(as.numeric(fa)); fb <- suppressWarnings(as.numeric(fb))
  stopifnot(length(fa) == length(fb))
  max(abs(fa - fb), na.rm = TRUE)
}

## Compare with numbers printed to `digits` significant digits.
agrees_printed <- function(value, printed) {
  dec <- function(p) { s <- sub("^-", "", p); if (grepl("e", s)) return(NA)
    if (!grepl(".", s, fixed = TRUE)) 0 else nchar(sub(".*\\.", "", s)) }
  ok <- mapply(function(v, p) {
    d <- dec(p); if (is.na(d)) return(signif(v, 3) == as.numeric(p))
    round(v, d) == as.numeric(p)
  }, value, printed)
  all(ok)
}

## ---------------------------------------------------------------- data: R's and carkin's CSVs
read_carkin_csv <- function(path) {
  read.csv(path, comment.char = "#", na.strings = ".", colClasses = "numeric", check.names = FALSE)
}

theoph_from_csv <- function(path) {
  d <- read_carkin_csv(path)
  o <- d[d$EVID == 0, ]
  df <- data.frame(Subject = o$ID, Wt = o$WT, Dose = o$DOSE, Time = o$TIME, conc = o$DV)
  ## the same groupedData as datasets::Theoph (groups ordered by maximum concentration)
  g <- groupedData(conc ~ Time | Subject, data = df, order.groups = TRUE,
                   labels = list(x = "Time since drug administration", y = "Theophylline concentration in serum"),
                   units = list(x = "(hr)", y = "(mg/l)"))
  g$Subject <- factor(as.character(g$Subject), levels = levels(datasets::Theoph$Subject), ordered = TRUE)
  rownames(g) <- NULL
  g
}

pheno_from_csv <- function(path) {
  d <- read_carkin_csv(path)
  df <- data.frame(Subject = d$ID, Wt = d$WT,
                   Apgar = factor(d$APGAR, levels = 1:10, ordered = TRUE),
                   ApgarInd = factor(ifelse(d$APGAR < 5, "< 5", ">= 5"), levels = c("< 5", ">= 5")),
                   time = d$TIME,
                   dose = ifelse(d$EVID == 1, d$AMT, NA_real_),
                   conc = ifelse(d$EVID == 0, d$DV, NA_real_))
  g <- groupedData(conc ~ time | Subject, data = df, order.groups = TRUE, FUN = function(x) max(x, na.rm = TRUE))
  g$Subject <- factor(as.character(g$Subject), levels = levels(nlme::Phenobarb$Subject), ordered = TRUE)
  rownames(g) <- NULL
  g
}

same_values <- function(a, b, cols) {
  all(vapply(cols, function(cn) {
    x <- a[[cn]]; y <- b[[cn]]
    if (is.factor(x)) return(identical(as.character(x), as.character(y)))
    identical(is.na(x), is.na(y)) && identical(x[!is.na(x)], y[!is.na(y)])
  }, TRUE))
}

theo_r <- datasets::Theoph
theo_c <- theoph_from_csv(theo_csv)
pheno_r <- nlme::Phenobarb
pheno_c <- pheno_from_csv(pheno_csv)
theo_same <- same_values(as.data.frame(theo_r), as.data.frame(theo_c), c("Subject", "Wt", "Dose", "Time", "conc"))
pheno_same <- same_values(as.data.frame(pheno_r), as.data.frame(pheno_c),
                          c("Subject", "Wt", "Apgar", "ApgarInd", "time", "dose", "conc"))
stopifnot(theo_same, pheno_same)

## ---------------------------------------------------------------- the models (book calls)
theo_models <- function(data) {
  env <- environment()
  lis <- nlsList(conc ~ SSfol(Dose, Time, lKe, lKa, lCl), data = data)
  fm1 <- fit_with_warnings(nlme(lis))  # = fm1Theo.nlme: pdSymm(lKe + lKa + lCl), start from nlsList
  fm2 <- fit_with_warnings(update(fm1$fit, random = pdDiag(lKe + lKa + lCl ~ 1)))
  fm3 <- fit_with_warnings(update(fm2$fit, random = pdDiag(lKa + lCl ~ 1)))
  list(fm1Theo.nlme = fm1, fm2Theo.nlme = fm2, fm3Theo.nlme = fm3)
}

pheno_models <- function(data, skip = character(0)) {
  data$ApgarLow <- as.numeric(data$ApgarInd == "< 5")  # 1 if the 5-minute Apgar score is below 5
  fm1 <- fit_with_warnings(nlme(conc ~ phenoModel(Subject, time, dose, lCl, lV),
                                data = data, fixed = lCl + lV ~ 1,
                                random = pdDiag(lCl + lV ~ 1), start = c(-5, 0),
                                na.action = NULL, naPattern = ~ !is.na(conc)))
  ## Covariate model of the book (fm2Pheno.nlme: lCl ~ Wt, lV ~ Wt + ApgarInd), with the book's start
  ## values and the treatment contrasts the book switches to first. nlme's own ch06.R no longer runs
  ## it ("ping-pongs until max.iterations error"); we try it with the book's control settings.
  fm2 <- if ("fm2Pheno.nlme" %in% skip) NULL else
    fit_with_warnings(update(fm1$fit, fixed = list(lCl ~ Wt, lV ~ Wt + ApgarInd),
                             start = c(-5.0935, 0, 0.34259, 0, 0),
                             control = list(pnlsTol = 1e-4, maxIter = 500, opt = "nlm")))
  ## Not in the book: the same structural model with the residual error of the classic NONMEM
  ## phenobarbital control streams (proportional, Y = F + F*EPS(1)), so that the fits can be set beside
  ## NONMEM FOCE-I results for the same data (docs/pk-references.md).
  ## nlme does not converge on this one (it oscillates between pnls and lme steps); kept to say so.
  fm_prop <- if ("pheno_prop.nlme" %in% skip) NULL else
    fit_with_warnings(update(fm1$fit, weights = varPower(fixed = 1)))
  fm_wt <- fit_with_warnings(nlme(conc ~ phenoModel(Subject, time, dose, lCl + log(Wt), lV + log(Wt)),
                                  data = data, fixed = list(lCl ~ 1, lV ~ ApgarLow),
                                  random = pdDiag(lCl + lV ~ 1), start = c(-5.3, 0, 0.1),
                                  weights = varPower(fixed = 1),
                                  na.action = NULL, naPattern = ~ !is.na(conc)))
  out <- list(fm1Pheno.nlme = fm1, fm2Pheno.nlme = fm2, pheno_prop.nlme = fm_prop,
              pheno_wt_apgar_prop.nlme = fm_wt)
  out[!vapply(out, is.null, TRUE)]
}

model_text <- list(
  fm1Theo.nlme = paste(
    "fm1Theo.lis <- nlsList(conc ~ SSfol(Dose, Time, lKe, lKa, lCl), data = Theoph);",
    "fm1Theo.nlme <- nlme(fm1Theo.lis)  # fixed = lKe + lKa + lCl ~ 1, random = pdSymm(lKe + lKa + lCl ~ 1), start = fixef(fm1Theo.lis), method = 'ML'"),
  fm2Theo.nlme = "update(fm1Theo.nlme, random = pdDiag(lKe + lKa + lCl ~ 1))",
  fm3Theo.nlme = "update(fm2Theo.nlme, random = pdDiag(lKa + lCl ~ 1))",
  fm1Pheno.nlme = paste(
    "nlme(conc ~ phenoModel(Subject, time, dose, lCl, lV), data = Phenobarb, fixed = lCl + lV ~ 1,",
    "random = pdDiag(lCl + lV ~ 1), start = c(-5, 0), na.action = NULL, naPattern = ~ !is.na(conc))  # method = 'ML'"),
  pheno_prop.nlme = paste(
    "update(fm1Pheno.nlme, weights = varPower(fixed = 1))  # proportional residual error:",
    "Var(conc) = sigma^2 * fitted^2 (fitted = individual prediction)"),
  pheno_wt_apgar_prop.nlme = paste(
    "nlme(conc ~ phenoModel(Subject, time, dose, lCl + log(Wt), lV + log(Wt)), data = Phenobarb,",
    "fixed = list(lCl ~ 1, lV ~ ApgarLow), random = pdDiag(lCl + lV ~ 1), start = c(-5.3, 0, 0.1),",
    "weights = varPower(fixed = 1), na.action = NULL, naPattern = ~ !is.na(conc))",
    "# ApgarLow = 1 if Apgar < 5; CL = exp(lCl) * Wt, V = exp(lV) * Wt; proportional residual error"),
  fm2Pheno.nlme = paste(
    "update(fm1Pheno.nlme, fixed = list(lCl ~ Wt, lV ~ Wt + ApgarInd), start = c(-5.0935, 0, 0.34259, 0, 0),",
    "control = list(pnlsTol = 1e-4, maxIter = 500, opt = 'nlm'))  # contrasts: contr.treatment")
)

## nlme maintainers' saved output of the book scripts (cran/nlme tests/extras/scripts.Rout.save,
## nlme 3.1-169, R 4.6.0 alpha, options(digits = 3)); text exactly as printed there.
printed_nlme_3.1_169 <- list(
  fm1Theo.nlme = list(fixed = c(lKe = "-2.433", lKa = "0.451", lCl = "-3.214"),
                      sd = c(lKe = "0.131", lKa = "0.638", lCl = "0.251"), residual = "0.682",
                      cor = c("lKe,lKa" = "0.012", "lKe,lCl" = "0.995", "lKa,lCl" = "-0.089"),
                      logLik = "-173", AIC = "367", BIC = "395"),
  fm2Theo.nlme = list(fixed = c(lKe = "-2.455", lKa = "0.466", lCl = "-3.227"),
                      sd = c(lKe = "1.93e-05", lKa = "0.644", lCl = "0.167"), residual = "0.709",
                      logLik = "-177", AIC = "368", BIC = "388"),
  fm3Theo.nlme = list(logLik = "-177", AIC = "366", BIC = "383"),
  fm1Pheno.nlme = list(fixed = c(lCl = "-5.093", lV = "0.343"),
                       sd = c(lCl = "0.44", lV = "0.45"), residual = "2.79", logLik = "-505")
)

check_printed <- function(desc, pr) {
  if (is.null(pr)) return(NULL)
  res <- list()
  if (!is.null(pr$fixed)) res$fixed <- agrees_printed(unlist(desc$fixed_effects$estimate)[names(pr$fixed)], pr$fixed)
  if (!is.null(pr$sd)) {
    ok <- agrees_printed(unlist(desc$random_effects$sd)[setdiff(names(pr$sd), "lKe")],
                         pr$sd[setdiff(names(pr$sd), "lKe")])
    if ("lKe" %in% names(pr$sd) && grepl("e", pr$sd[["lKe"]]))  # a boundary estimate: only "near 0" is reproducible
      ok <- ok && desc$random_effects$sd$lKe < 1e-3
    else if ("lKe" %in% names(pr$sd)) ok <- ok && agrees_printed(desc$random_effects$sd$lKe, pr$sd[["lKe"]])
    res$random_sd <- ok
  }
  if (!is.null(pr$residual)) res$residual_sd <- agrees_printed(desc$residual_sd, pr$residual)
  if (!is.null(pr$cor)) res$correlation <- agrees_printed(unlist(desc$random_effects$correlation)[names(pr$cor)], pr$cor)
  if (!is.null(pr$logLik)) res$logLik <- agrees_printed(desc$log_likelihood, pr$logLik)
  if (!is.null(pr$AIC)) res$AIC <- agrees_printed(desc$AIC, pr$AIC)
  if (!is.null(pr$BIC)) res$BIC <- agrees_printed(desc$BIC, pr$BIC)
  res$all <- all(unlist(res))
  res
}

derived_theo <- function(desc) {
  fe <- desc$fixed_effects$estimate
  ke <- exp(fe$lKe); ka <- exp(fe$lKa); cl <- exp(fe$lCl)
  list(note = "typical values exp(fixed effect); apparent (oral, F unknown), per kg because Dose is mg/kg",
       ke_per_h = ke, ka_per_h = ka, CL_over_F_L_per_h_per_kg = cl, V_over_F_L_per_kg = cl / ke,
       half_life_h = log(2) / ke)
}
derived_pheno <- function(desc) {
  fe <- desc$fixed_effects$estimate
  if (!is.null(fe$lCl) && !is.null(fe$lV))
    return(list(note = paste("typical values exp(fixed effect), in the units of the data: with dose in mg and conc",
                             "in mg/L (see the data README), CL is L/h and V is L for the whole infant"),
                CL = exp(fe$lCl), V = exp(fe$lV), half_life_h = log(2) * exp(fe$lV) / exp(fe$lCl),
                THETA1 = exp(fe$lCl), THETA2 = exp(fe$lV),
                OMEGA11 = desc$random_effects$sd$lCl^2, OMEGA22 = desc$random_effects$sd$lV^2,
                SIGMA11 = desc$residual_sd^2, minus2LL = -2 * desc$log_likelihood,
                NONMEM_style_OFV = -2 * desc$log_likelihood - desc$n_observations * log(2 * pi)))
  if (!is.null(fe[["lV.ApgarLow"]]))
    return(list(note = paste("NONMEM pheno_real parameterisation: CL = THETA1 * WT, V = THETA2 * WT * (1 + THETA3 if",
                             "Apgar < 5); THETA1 = exp(lCl) L/h/kg, THETA2 = exp(lV.(Intercept)) L/kg,",
                             "THETA3 = exp(lV.ApgarLow) - 1; omega^2 = random-effect SD^2, sigma^2 = residual_sd^2"),
                THETA1 = exp(fe$lCl), THETA2 = exp(fe[["lV.(Intercept)"]]), THETA3 = exp(fe[["lV.ApgarLow"]]) - 1,
                OMEGA11 = desc$random_effects$sd$lCl^2, OMEGA22 = desc$random_effects$sd[["lV.(Intercept)"]]^2,
                SIGMA11 = desc$residual_sd^2, minus2LL = -2 * desc$log_likelihood,
                NONMEM_style_OFV = -2 * desc$log_likelihood - desc$n_observations * log(2 * pi)))
  NULL
}

## NONMEM FOCE-I (METHOD=1 INTERACTION) results for the same phenobarbital data and the same models,
## from the NONMEM output files that Pharmpy keeps as test fixtures (github.com/pharmpy/pharmpy,
## commit 435dd66ecfc0532db4b8f5de2cea0afb1ecb4d84, tests/testdata/nonmem/); their pheno.dta holds the
## same 744 records as phenobarbital.csv (checked value by value). OFV = -2 log L - N log(2 pi).
nonmem_focei <- list(
  pheno_prop.nlme = list(
    source = "Pharmpy tests/testdata/nonmem/pheno.mod, pheno.ext, pheno.lst (NONMEM 7.4.4; no covariance step)",
    model = "CL = THETA1*exp(ETA1), V = THETA2*exp(ETA2), Y = F + F*EPS(1)",
    THETA1 = 5.81756e-3, THETA2 = 1.44555, OMEGA11 = 1.11053e-1, OMEGA22 = 2.01526e-1, SIGMA11 = 1.64177e-2,
    OFV = 730.89472681373070),
  pheno_wt_apgar_prop.nlme = list(
    source = "Pharmpy tests/testdata/nonmem/pheno_real.mod, pheno_real.ext, pheno_real.lst (NONMEM 7.4.2)",
    model = "CL = THETA1*WGT*exp(ETA1), V = THETA2*WGT*(1+THETA3 if APGR<5)*exp(ETA2), Y = F + F*EPS(1)",
    THETA1 = 4.69555e-3, THETA2 = 9.84258e-1, THETA3 = 1.58920e-1,
    OMEGA11 = 2.93508e-2, OMEGA22 = 2.79060e-2, SIGMA11 = 1.32410e-2, OFV = 586.27605628188053,
    SE = list(THETA1 = 2.10036e-4, THETA2 = 2.68952e-2, THETA3 = 8.37623e-2,
              OMEGA11 = 1.34153e-2, OMEGA22 = 7.47651e-3, SIGMA11 = 2.27940e-3))
)

compare_nonmem <- function(derived, ref) {
  if (is.null(ref) || is.null(derived)) return(NULL)
  keys <- intersect(c("THETA1", "THETA2", "THETA3", "OMEGA11", "OMEGA22", "SIGMA11"), names(derived))
  rel <- lapply(keys, function(k) derived[[k]] / ref[[k]] - 1)
  names(rel) <- keys
  c(ref, list(relative_difference_nlme_vs_nonmem = rel,
              OFV_difference_nlme_minus_nonmem = derived$NONMEM_style_OFV - ref$OFV,
              note = paste("nlme maximises the Lindstrom-Bates (alternating, linearised) approximation of the",
                           "likelihood, NONMEM FOCE-I a Laplace-type approximation: expect close, not equal, values")))
}

run_set <- function(models_r, models_c, derive) {
  out <- list()
  for (nm in names(models_r)) {
    fr <- models_r[[nm]]; fc <- models_c[[nm]]
    if (inherits(fr$fit, "error")) {
      out[[nm]] <- list(call = model_text[[nm]], fitted = FALSE,
                        error = conditionMessage(fr$fit), warnings = I(unname(fr$warnings)),
                        note = "not refitted to the CSV data: it does not converge on R's own data")
      next
    }
    d <- describe_fit(fr$fit, fr$warnings)
    dc <- if (is.null(fc) || inherits(fc$fit, "error")) NULL else describe_fit(fc$fit, fc$warnings)
    entry <- c(list(call = model_text[[nm]], fitted = TRUE), d)
    entry$derived <- derive(d)
    entry$error_model <- if (is.null(fr$fit$modelStruct$varStruct)) "additive: conc = prediction + e, e ~ N(0, residual_sd^2)" else
      "proportional: conc = f + f * e, e ~ N(0, residual_sd^2), f = individual prediction (varPower(fixed = 1))"
    entry$refit_from_carkin_csv <- if (is.null(dc)) list(fitted = FALSE, error = conditionMessage(fc$fit)) else
      list(fitted = TRUE, max_abs_difference = max_abs_diff(d, dc),
           log_likelihood = dc$log_likelihood)
    nm_ref <- compare_nonmem(entry$derived, nonmem_focei[[nm]])
    if (!is.null(nm_ref)) entry$nonmem_focei_same_model_and_data <- nm_ref
    pc <- check_printed(d, printed_nlme_3.1_169[[nm]])
    if (!is.null(pc)) entry$agrees_with_nlme_3.1_169_saved_output <- pc
    out[[nm]] <- entry
  }
  out
}

theo <- run_set(theo_models(theo_r), theo_models(theo_c), derived_theo)
pheno_fits_r <- pheno_models(pheno_r)
pheno <- run_set(pheno_fits_r,
                 pheno_models(pheno_c, skip = names(Filter(function(f) inherits(f$fit, "error"), pheno_fits_r))),
                 derived_pheno)
if (isTRUE(pheno$fm1Pheno.nlme$fitted)) {
  fe <- pheno$fm1Pheno.nlme$fixed_effects$estimate
  pheno$fm1Pheno.nlme$agrees_with_book_start_values_ch06 <- list(
    note = "ch06.R starts fm2Pheno.nlme at c(-5.0935, 0, 0.34259, 0, 0): the book's fm1Pheno.nlme estimates to 5 significant digits",
    book = list(lCl = -5.0935, lV = 0.34259),
    difference = list(lCl = fe$lCl - (-5.0935), lV = fe$lV - 0.34259),
    agrees_to_printed_digits = list(lCl = round(fe$lCl, 4) == -5.0935, lV = round(fe$lV, 5) == 0.34259))
}

result <- list(
  description = paste(
    "Reference maximum-likelihood fits of R nlme to Theoph and Phenobarb (Pinheiro & Bates 2000, secs 8.2 and 6.4),",
    "produced by benchmarks/peers/r/nlme_reference.R. Parameters are on nlme's scale (natural logs of rate",
    "constants, clearance and volume); residual_sd is the within-subject error SD of the fit's error_model",
    "(additive: mg/L; proportional: a fraction of the prediction); random-effect SDs are on the log scale.",
    "Standard errors are nlme's (from the approximate information matrix of the fixed effects).",
    "BLUPs are the conditional modes (ranef) in subject-ID order. All fits by maximum likelihood (method = 'ML',",
    "nlme's default and the book's choice); no REML fit is recorded because the book has none for these models."),
  software = list(R = R.version.string, nlme = utils::packageDescription("nlme")$Version,
                  platform = R.version$platform, date = format(Sys.Date())),
  printed_book_values = paste(
    "Not compared: the printed values of Pinheiro & Bates (2000) were not available to us.",
    "Compared instead with nlme's own saved output of the book scripts (tests/extras/scripts.Rout.save in the nlme",
    "sources, nlme 3.1-169, 3 significant digits) and, for fm1Pheno.nlme, with the start values that the book's",
    "ch06.R copies from the book's fm1Pheno.nlme output."),
  data = list(
    theophylline = list(source = "datasets::Theoph", carkin_csv = theo_csv,
                        carkin_csv_md5 = unname(tools::md5sum(theo_csv)), csv_equals_R_data = theo_same,
                        n_subjects = 12L, n_observations = nrow(theo_r)),
    phenobarbital = list(source = "nlme::Phenobarb", carkin_csv = pheno_csv,
                         carkin_csv_md5 = unname(tools::md5sum(pheno_csv)), csv_equals_R_data = pheno_same,
                         n_subjects = 59L, n_observations = sum(!is.na(pheno_r$conc)),
                         n_doses = sum(!is.na(pheno_r$dose)))),
  theophylline = theo,
  phenobarbital = pheno
)

dir.create(dirname(out_path), recursive = TRUE, showWarnings = FALSE)
con <- file(out_path, open = "wb")
writeLines(to_json(result), con, sep = "\n")
close(con)
cat("wrote", out_path, "\n")
for (set in c("theophylline", "phenobarbital")) for (nm in names(result[[set]])) {
  e <- result[[set]][[nm]]
  if (!isTRUE(e$fitted)) { cat(nm, ": not fitted:", e$error, "\n"); next }
  cat(sprintf("%-14s logLik %.4f  sigma %.5f  refit diff %.2g  warnings %d\n", nm, e$log_likelihood,
              e$residual_sd, e$refit_from_carkin_csv$max_abs_difference, length(e$warnings)))
}
