# Reference cohorts for crates/seh-data/tests/cohort_tmerge.rs, computed
# independently of the Rust code: from the flat CSV export of the synthetic
# records (flat_*.csv, written by the generator, not parsed from FHIR) with
# R's survival::tmerge. Run from this directory:  Rscript make_tmerge_ref.R
# Writes expected_ckd_death.csv and expected_diabetes_hf.csv (rows keyed by
# the raw patient id; the Rust test maps ids to its pseudonym numbering).
suppressPackageStartupMessages(library(survival))

read_all <- function(pattern) {
  files <- sort(Sys.glob(pattern))
  do.call(rbind, lapply(files, function(f) read.csv(f, colClasses = "character")))
}
pat <- read_all("site*_flat_patients.csv")
cond <- read_all("site*_flat_conditions.csv")
labs <- read_all("site*_flat_labs.csv")

day <- function(x) ifelse(x == "", NA, as.numeric(as.Date(x)))
pat$birth <- day(pat$birth_date)
pat$death <- day(pat$death_date)
pat$deceased <- as.integer(pat$deceased)
cond <- cond[cond$verification != "entered-in-error", ]
cond$onset <- day(cond$onset_date)
labs <- labs[labs$status == "final", ]
labs$day <- day(labs$date)
labs$value <- as.numeric(labs$value)

first_onset <- function(code) {
  x <- cond[cond$code == code, ]
  tapply(x$onset, x$id, min)  # named by patient id
}
lookup <- function(v, ids) unname(v[ids])  # NA where absent

SNOMED_DM <- "44054006"; SNOMED_HT <- "38341003"; SNOMED_HF <- "84114007"
end_day <- as.numeric(as.Date("2020-12-31"))

build <- function(index, outcome_code = NULL, max_days = NA) {
  p <- pat
  p$index <- index
  p <- p[!is.na(p$index), ]
  p <- p[is.na(p$birth) | p$birth <= p$index, ]
  p <- p[!(p$deceased == 1 & is.na(p$death)), ]
  p <- p[is.na(p$death) | p$death > p$index, ]
  admin <- pmin(end_day, if (is.na(max_days)) Inf else p$index + max_days)
  if (is.null(outcome_code)) {
    ev <- !is.na(p$death) & p$death <= admin
    exit <- ifelse(ev, p$death, admin)
  } else {
    on <- lookup(first_onset(outcome_code), p$id)
    keep <- is.na(on) | on > p$index
    p <- p[keep, ]; admin <- admin[keep]; on <- on[keep]
    censor <- pmin(ifelse(is.na(p$death), Inf, p$death), admin)
    ev <- !is.na(on) & on <= censor
    exit <- ifelse(ev, on, censor)
  }
  p$futime <- exit - p$index
  p$status <- as.integer(ev)
  stopifnot(!anyNA(p$futime))
  p <- p[p$futime > 0, ]
  p$age <- (p$index - p$birth) / 365.25
  p$male <- ifelse(p$gender == "male", 1, ifelse(p$gender == "female", 0, NA))
  base_cond <- function(code) {
    on <- lookup(first_onset(code), p$id)
    as.numeric(!is.na(on) & on <= p$index)
  }
  p$diabetes <- base_cond(SNOMED_DM)
  p$hypertension <- base_cond(SNOMED_HT)
  p
}

add_lab <- function(tm, base, code, name) {
  l <- labs[labs$code == code & labs$id %in% base$id, ]
  l$time <- l$day - base$index[match(l$id, base$id)]
  l <- l[order(l$id, l$time), ]
  args <- list(tm, l, id = quote(id))
  args[[name]] <- call("tdc", quote(time), quote(value))
  do.call(tmerge, args)
}

# 1. Death after 2015-01-01.
b <- build(rep(as.numeric(as.Date("2015-01-01")), nrow(pat)))
tm <- tmerge(b[, c("id", "futime", "status", "age", "male", "diabetes", "hypertension", "index")],
             b, id = id, death = event(futime, status))
tm <- add_lab(tm, b, "2160-0", "creat")
tm <- add_lab(tm, b, "98979-8", "egfr")
hf <- data.frame(id = b$id, t = lookup(first_onset(SNOMED_HF), b$id) - b$index)
hf <- hf[!is.na(hf$t), ]
tm <- tmerge(tm, hf, id = id, hf = tdc(t))
out <- tm[, c("id", "tstart", "tstop", "death", "age", "male", "diabetes", "hypertension", "creat", "egfr", "hf")]
write.csv(out, "expected_ckd_death.csv", row.names = FALSE, na = "NA")
cat("ckd_death:", nrow(b), "patients,", nrow(out), "rows,", sum(out$death), "deaths\n")

# 2. Heart failure after the first diabetes diagnosis, five-year cap.
dm <- first_onset(SNOMED_DM)
b2 <- build(lookup(dm, pat$id), outcome_code = SNOMED_HF, max_days = 1825)
tm2 <- tmerge(b2[, c("id", "futime", "status", "age", "male", "hypertension", "index")],
              b2, id = id, hf = event(futime, status))
tm2 <- add_lab(tm2, b2, "2160-0", "creat")
out2 <- tm2[, c("id", "tstart", "tstop", "hf", "age", "male", "hypertension", "creat")]
write.csv(out2, "expected_diabetes_hf.csv", row.names = FALSE, na = "NA")
cat("diabetes_hf:", nrow(b2), "patients,", nrow(out2), "rows,", sum(out2$hf), "events\n")
