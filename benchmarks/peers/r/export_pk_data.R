#!/usr/bin/env Rscript
## Export R's Theoph (package datasets) and nlme's Phenobarb to carkin's NONMEM-style CSV files.
##
## Cross-check recipe only: carkin ships the CSV files this script wrote, and never needs R.
## Run from the repository root:
##     Rscript benchmarks/peers/r/export_pk_data.R            # writes src/carkin/_data/{theophylline,phenobarbital}/
##     Rscript benchmarks/peers/r/export_pk_data.R OUTDIR     # writes OUTDIR/{theophylline,phenobarbital}/
## Needs R >= 4.0 and the recommended package nlme (Debian: r-base-core r-cran-nlme).
##
## Numbers are written with as.character() (15 significant digits), which reproduces R's doubles for
## these data exactly; nlme_reference.R reads the files back and checks this value by value.

suppressPackageStartupMessages(library(nlme))

args <- commandArgs(trailingOnly = TRUE)
out_root <- if (length(args) >= 1) args[[1]] else file.path("src", "carkin", "_data")

num <- function(x) ifelse(is.na(x), ".", as.character(x))

write_records <- function(df, path, comment) {
  stopifnot(!grepl("\n", comment, fixed = TRUE))
  body <- vapply(seq_len(nrow(df)), function(i) {
    paste(vapply(df[i, , drop = FALSE], function(v) if (is.character(v)) v else num(v), ""), collapse = ",")
  }, "")
  dir.create(dirname(path), recursive = TRUE, showWarnings = FALSE)
  con <- file(path, open = "wb")  # "\n" line ends on every platform
  on.exit(close(con))
  writeLines(c(paste0("# ", comment), paste(names(df), collapse = ","), body), con, sep = "\n")
  invisible(path)
}

## ---- Theoph: 12 subjects, one oral dose (mg/kg) at TIME 0, 11 concentrations each ----------------
th <- as.data.frame(datasets::Theoph)
th$ID <- as.integer(as.character(th$Subject))  # the ordered factor's labels are the subject numbers
stopifnot(all(tapply(th$Wt, th$ID, function(v) length(unique(v))) == 1),
          all(tapply(th$Dose, th$ID, function(v) length(unique(v))) == 1),
          all(tapply(th$Time, th$ID, min) == 0))
subj <- th[!duplicated(th$ID), c("ID", "Wt", "Dose")]
doses <- data.frame(ID = subj$ID, TIME = 0, DV = NA_real_, EVID = 1L, AMT = subj$Dose, MDV = 1L,
                    CMT = 1L, WT = subj$Wt, DOSE = subj$Dose)
obs <- data.frame(ID = th$ID, TIME = th$Time, DV = th$conc, EVID = 0L, AMT = NA_real_, MDV = 0L,
                  CMT = 2L, WT = th$Wt, DOSE = th$Dose)
theo <- rbind(doses, obs)
## dose record first at TIME 0 (EVID 1 sorts before EVID 0 at the same time)
theo <- theo[order(theo$ID, theo$TIME, -theo$EVID), ]
write_records(theo, file.path(out_root, "theophylline", "theophylline.csv"), paste(
  "REAL published data (not simulated): theophylline, 12 subjects, one oral dose at TIME 0;",
  paste0("R datasets::Theoph (R ", R.version$major, ".", R.version$minor, ")"),
  "from Boeckmann, Sheiner & Beal (1994) NONMEM Users Guide Part V; analysed in Pinheiro & Bates (2000) sec. 8.2.",
  "Units: TIME h after the dose; DV theophylline serum concentration mg/L; AMT and DOSE mg/kg body weight;",
  "WT kg; CMT 1 = depot (dose), 2 = central (observations). See README.md."))

## ---- Phenobarb: 59 neonates, repeated IV doses, sparse concentrations -----------------------------
pb <- as.data.frame(nlme::Phenobarb)
pb$ID <- as.integer(as.character(pb$Subject))
stopifnot(!any(!is.na(pb$dose) & !is.na(pb$conc)),  # a row is either a dose or a concentration
          !any(is.na(pb$dose) & is.na(pb$conc)),
          all(tapply(pb$Wt, pb$ID, function(v) length(unique(v))) == 1),
          all(tapply(as.character(pb$Apgar), pb$ID, function(v) length(unique(v))) == 1))
is_dose <- !is.na(pb$dose)
pheno <- data.frame(ID = pb$ID, TIME = pb$time,
                    DV = ifelse(is_dose, NA_real_, pb$conc),
                    EVID = ifelse(is_dose, 1L, 0L),
                    AMT = ifelse(is_dose, pb$dose, NA_real_),
                    MDV = ifelse(is_dose, 1L, 0L),
                    WT = pb$Wt,
                    APGAR = as.integer(as.character(pb$Apgar)))
## nlme's row order is by subject then time, with no dose and concentration at the same time; keep it
## (the dose-first rule at equal times is applied anyway, for safety).
pheno <- pheno[order(pheno$ID, pheno$TIME, -pheno$EVID), ]
write_records(pheno, file.path(out_root, "phenobarbital", "phenobarbital.csv"), paste(
  "REAL published data (not simulated): phenobarbital in 59 neonates, repeated IV bolus doses, sparse sampling;",
  paste0("nlme::Phenobarb (nlme ", utils::packageDescription("nlme")$Version, ")"),
  "from Grasela & Donn (1985) Dev Pharmacol Ther 8:374-383; analysed in Pinheiro & Bates (2000) sec. 6.4.",
  "Units: TIME h; DV serum concentration as in nlme (values consistent with mg/L = ug/mL);",
  "AMT dose as in nlme (documented there as ug/kg, but the values scale with WT and behave as the total dose in mg: see README.md);",
  "WT birth weight kg; APGAR 5-minute Apgar score (1-10)."))

cat("wrote", nrow(theo), "Theoph records and", nrow(pheno), "Phenobarb records under", out_root, "\n")
