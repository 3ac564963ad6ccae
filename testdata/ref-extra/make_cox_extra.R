# Extra Cox reference fits (robust variance with cluster(), time-varying
# coefficients with tt()) for crates/seh-stats/tests/cox_reference.rs.
#
# Run from this directory:  Rscript make_cox_extra.R
# Needs R with the recommended `survival` package (3.5-3 was used).
# Writes ./<case>.json with 17 significant digits. CI does not need R: the
# JSON files are committed.

suppressPackageStartupMessages(library(survival))

num <- function(x) {
  if (length(x) != 1) stop("scalar expected")
  if (is.na(x)) return("null")
  if (is.infinite(x)) stop("infinite value")
  sprintf("%.17g", x)
}
str1 <- function(s) paste0('"', gsub('"', '\\\\"', s), '"')
vec <- function(x) paste0("[", paste(vapply(x, num, ""), collapse = ", "), "]")
named <- function(x, nm) paste0("{", paste(sprintf("%s: %s", vapply(nm, str1, ""), vapply(x, num, "")), collapse = ", "), "}")
mat <- function(m) paste0("[", paste(apply(m, 1, vec), collapse = ", "), "]")
test <- function(stat, df) sprintf('{"statistic": %s, "df": %s, "p": %s}', num(stat), num(df), num(pchisq(stat, df, lower.tail = FALSE)))

ctrl <- coxph.control(eps = 1e-12, toler.chol = 1e-13, iter.max = 100)

write_fit <- function(case, fit, formula_text, dataset, extra_notes = character()) {
  s <- summary(fit)
  terms <- names(coef(fit))
  b <- coef(fit)
  naive <- if (is.null(fit$naive.var)) fit$var else fit$naive.var
  v <- fit$var  # robust when clustered
  se <- sqrt(diag(naive))
  tse <- sqrt(diag(v))
  z <- b / tse
  df <- sum(!is.na(b))
  q <- qnorm(0.975)
  fields <- c(
    sprintf('"case": %s', str1(case)),
    sprintf('"dataset": %s', str1(dataset)),
    sprintf('"formula": %s', str1(formula_text)),
    sprintf('"ties": %s', str1(fit$method)),
    sprintf('"n": %d', fit$n),
    sprintf('"nevent": %d', fit$nevent),
    sprintf('"terms": [%s]', paste(vapply(terms, str1, ""), collapse = ", ")),
    sprintf('"coef": %s', named(b, terms)),
    sprintf('"se": %s', named(se, terms)),
    sprintf('"z": %s', named(z, terms)),
    sprintf('"p": %s', named(pchisq(z^2, 1, lower.tail = FALSE), terms)),
    sprintf('"hazard_ratio": %s', named(exp(b), terms)),
    sprintf('"hr_lower95": %s', named(exp(b - q * tse), terms)),
    sprintf('"hr_upper95": %s', named(exp(b + q * tse), terms)),
    sprintf('"var": %s', mat(naive)),
    sprintf('"loglik_null": %s', num(fit$loglik[1])),
    sprintf('"loglik": %s', num(fit$loglik[2])),
    sprintf('"lrt": %s', test(2 * (fit$loglik[2] - fit$loglik[1]), df)),
    sprintf('"score_test": %s', test(fit$score, df)),
    sprintf('"wald_test": %s', test(as.vector(fit$wald.test), df)),
    sprintf('"iterations": %d', fit$iter),
    sprintf('"means": %s', named(fit$means, terms))
  )
  if (!is.null(fit$naive.var)) {
    fields <- c(fields,
      sprintf('"robust_se": %s', named(tse, terms)),
      sprintf('"robust_var": %s', mat(v)),
      sprintf('"robust_score_test": %s', test(fit$rscore, df)))
  }
  notes <- c("fit with coxph.control(eps=1e-12, toler.chol=1e-13, iter.max=100)",
             "with cluster(): se and var are model-based (naive); z, p, hr limits and wald_test use the robust variance, as summary.coxph reports",
             extra_notes)
  fields <- c(fields,
    sprintf('"notes": [%s]', paste(vapply(notes, str1, ""), collapse = ", ")),
    sprintf('"generator": {"R_version": %s, "survival_version": %s, "generator": "make_cox_extra.R"}',
            str1(R.version.string), str1(as.character(packageVersion("survival")))))
  writeLines(paste0("{\n  ", paste(fields, collapse = ",\n  "), "\n}"), paste0(case, ".json"))
}

heart <- read.csv("../ref/data/heart.csv")
lung <- read.csv("../ref/data/lung.csv")
rossi <- read.csv("../ref/data/rossi.csv")

for (ties in c("efron", "breslow")) {
  f <- Surv(start, stop, event) ~ age + year + surgery + transplant + cluster(id)
  fit <- coxph(f, data = heart, ties = ties, control = ctrl)
  write_fit(paste0("heart_", ties, "_cluster"), fit, paste(deparse(f, width.cutoff = 500L), collapse = ""), "heart")
}

f <- Surv(time, status) ~ age + sex + ph.ecog + cluster(inst)
fit <- coxph(f, data = lung, ties = "efron", control = ctrl)
write_fit("lung_efron_cluster_inst", fit, paste(deparse(f, width.cutoff = 500L), collapse = ""), "lung")

f <- Surv(time, status) ~ age + tt(ph.karno)
fit <- coxph(f, data = lung, ties = "efron", control = ctrl, tt = function(x, t, ...) x * log(t + 20))
write_fit("lung_efron_tt", fit, paste(deparse(f, width.cutoff = 500L), collapse = ""), "lung", "tt = function(x, t, ...) x * log(t + 20)")

f <- Surv(week, arrest) ~ fin + age + prio + tt(age)
for (ties in c("efron", "breslow")) {
  fit <- coxph(f, data = rossi, ties = ties, control = ctrl, tt = function(x, t, ...) x * log(t))
  write_fit(paste0("rossi_", ties, "_tt"), fit, paste(deparse(f, width.cutoff = 500L), collapse = ""), "rossi", "tt = function(x, t, ...) x * log(t)")
}
