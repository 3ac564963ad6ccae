# Extra references for Kaplan-Meier (conf.type "log-log" and "plain",
# counting-process data), survdiff (rossi by fin, rho = 0 and 1), concordance
# with cluster(), and GLMs (gaussian; poisson with offset) for
# crates/seh-stats/tests/{km,glm,concordance}_reference.rs.
#
# Run from this directory:  Rscript make_kmglm_extra.R
# Needs R with the recommended `survival` package (3.5-3 was used).
# Writes ./<case>.json with 17 significant digits. CI does not need R: the
# JSON files are committed.

suppressPackageStartupMessages(library(survival))

num <- function(x) {
  if (length(x) != 1) stop("scalar expected")
  if (is.na(x) || is.infinite(x)) return("null")
  sprintf("%.17g", x)
}
str1 <- function(s) paste0('"', gsub('"', '\\\\"', s), '"')
vec <- function(x) paste0("[", paste(vapply(as.numeric(x), num, ""), collapse = ", "), "]")
named <- function(x, nm) paste0("{", paste(sprintf("%s: %s", vapply(nm, str1, ""), vapply(as.numeric(x), num, "")), collapse = ", "), "}")
mat <- function(m) paste0("[", paste(apply(m, 1, vec), collapse = ", "), "]")
obj <- function(fields) paste0("{\n  ", paste(fields, collapse = ",\n  "), "\n}\n")
generator <- sprintf('"generator": {"R_version": %s, "survival_version": %s, "generator": "make_kmglm_extra.R"}',
                     str1(R.version.string), str1(as.character(packageVersion("survival"))))

data_dir <- "../ref/data"
lung_full <- read.csv(file.path(data_dir, "lung_full.csv"))
rossi <- read.csv(file.path(data_dir, "rossi.csv"))
birthwt <- read.csv(file.path(data_dir, "birthwt.csv"))
heart <- read.csv(file.path(data_dir, "heart.csv"))

# ---------------------------------------------------------------- Kaplan-Meier
km_json <- function(case, fit, call_text, data_file, conf_type, extra = character()) {
  ns <- if (is.null(fit$strata)) 1 else length(fit$strata)
  sizes <- if (is.null(fit$strata)) length(fit$time) else fit$strata
  labels <- if (is.null(fit$strata)) "all" else names(fit$strata)
  q <- quantile(fit, probs = 0.5)
  qm <- function(x) if (is.matrix(x)) x[, 1] else x
  med <- qm(q$quantile); lo <- qm(q$lower); hi <- qm(q$upper)
  end <- cumsum(sizes); start <- end - sizes + 1
  strata <- character(ns)
  for (i in seq_len(ns)) {
    k <- start[i]:end[i]
    s <- fit$surv[k]; se <- fit$std.err[k]
    strata[i] <- paste0("{",
      paste(c(
        sprintf('"stratum": %s', str1(labels[i])),
        sprintf('"n": %s', num(fit$n[i])),
        sprintf('"events": %s', num(sum(fit$n.event[k]))),
        sprintf('"median": %s', num(med[i])),
        sprintf('"median_lower95": %s', num(lo[i])),
        sprintf('"median_upper95": %s', num(hi[i])),
        sprintf('"time": %s', vec(fit$time[k])),
        sprintf('"n_risk": %s', vec(fit$n.risk[k])),
        sprintf('"n_event": %s', vec(fit$n.event[k])),
        sprintf('"n_censor": %s', vec(fit$n.censor[k])),
        sprintf('"surv": %s', vec(s)),
        sprintf('"std_err": %s', vec(se)),
        sprintf('"se_surv": %s', vec(s * se)),
        sprintf('"lower": %s', vec(fit$lower[k])),
        sprintf('"upper": %s', vec(fit$upper[k])),
        sprintf('"cumhaz": %s', vec(fit$cumhaz[k])),
        sprintf('"std_chaz": %s', vec(fit$std.chaz[k]))), collapse = ", "), "}")
  }
  fields <- c(sprintf('"case": %s', str1(case)),
              sprintf('"data_file": %s', str1(data_file)),
              sprintf('"call": %s', str1(call_text)),
              sprintf('"conf_type": %s', str1(conf_type)),
              '"notes": ["median and its CI from quantile.survfit(fit, 0.5)", "std_err is the SE of -log S; se_surv = surv * std_err"]',
              sprintf('"strata": [%s]', paste(strata, collapse = ",\n    ")),
              extra, generator)
  writeLines(obj(fields), paste0(case, ".json"), sep = "")
}

lung_full$status01 <- lung_full$status
for (ct in c("log-log", "plain")) {
  fit <- survfit(Surv(time, status) ~ sex, data = lung_full, conf.type = ct)
  case <- paste0("km_lung_sex_", gsub("-", "", ct))
  km_json(case, fit, sprintf("survfit(Surv(time, status) ~ sex, lung_full, conf.type = '%s')", ct),
          "data/lung_full.csv", ct)
}

# Integer case weights 1 + (row %% 3) (integer weights keep R's Greenwood variance;
# non-integer weights would switch survfit to its robust variance).
lw <- lung_full
lw$w <- 1 + (seq_len(nrow(lw)) %% 3)
fit <- survfit(Surv(time, status) ~ sex, data = lw, weights = w)
km_json("km_lung_sex_weighted", fit, "survfit(Surv(time, status) ~ sex, lung_full, weights = 1 + (row %% 3))",
        "data/lung_full.csv", "log", extra = '"weights": "1 + (row % 3)"')

# Counting-process data (no id): heart by surgery.
fit <- survfit(Surv(start, stop, event) ~ surgery, data = heart)
km_json("km_heart_counting_surgery", fit, "survfit(Surv(start, stop, event) ~ surgery, heart)",
        "data/heart.csv", "log")

# ---------------------------------------------------------------- survdiff
sd_json <- function(sd, rho) {
  # with strata(), obs/exp are groups x strata matrices; survdiff tests their row sums
  if (is.matrix(sd$obs)) { sd$obs <- rowSums(sd$obs); sd$exp <- rowSums(sd$exp) }
  df <- sum(sd$exp > 0) - 1
  sprintf('{"call": %s, "rho": %s, "chisq": %s, "df": %s, "p": %s, "n": %s, "observed": %s, "expected": %s, "var": %s}',
          str1(paste(deparse(sd$call), collapse = " ")), num(rho), num(sd$chisq), num(df),
          num(pchisq(sd$chisq, df, lower.tail = FALSE)), vec(as.numeric(sd$n)),
          vec(sd$obs), vec(sd$exp), mat(sd$var))
}
fit <- survfit(Surv(week, arrest) ~ fin, data = rossi)
sd0 <- survdiff(Surv(week, arrest) ~ fin, data = rossi)
sd1 <- survdiff(Surv(week, arrest) ~ fin, data = rossi, rho = 1)
sdp <- survdiff(Surv(week, arrest) ~ prio_grp, data = transform(rossi, prio_grp = pmin(prio, 3)))
sds <- survdiff(Surv(week, arrest) ~ fin + strata(race), data = rossi)
km_json("km_rossi_fin", fit, "survfit(Surv(week, arrest) ~ fin, rossi)", "data/rossi.csv", "log",
        extra = c(sprintf('"logrank": %s', sd_json(sd0, 0)),
                  sprintf('"peto_peto": %s', sd_json(sd1, 1)),
                  sprintf('"logrank_prio4": %s', sd_json(sdp, 0)),
                  sprintf('"logrank_strata_race": %s', sd_json(sds, 0))))

# ---------------------------------------------------------------- concordance with cluster()
ctrl <- coxph.control(eps = 1e-12, toler.chol = 1e-13, iter.max = 100)
cfit <- coxph(Surv(start, stop, event) ~ age + year + surgery + transplant + cluster(id), data = heart,
              control = ctrl)
cc <- cfit$concordance
writeLines(obj(c(
  '"case": "concordance_heart_cluster"',
  '"dataset": "heart"',
  '"data_file": "data/heart.csv"',
  '"formula": "Surv(start, stop, event) ~ age + year + surgery + transplant + cluster(id)"',
  sprintf('"terms": %s', paste0("[", paste(vapply(names(coef(cfit)), str1, ""), collapse = ", "), "]")),
  sprintf('"coef": %s', named(coef(cfit), names(coef(cfit)))),
  sprintf('"concordance": %s', named(cc, names(cc))),
  generator)), "concordance_heart_cluster.json", sep = "")

# Case weights 1 + (row %% 3) and strata(inst) (more than 10 strata: R's
# disjoint-time-interval path) on the complete-case lung data.
lung <- read.csv(file.path(data_dir, "lung.csv"))
lung$w <- 1 + (seq_len(nrow(lung)) %% 3)
wfit <- coxph(Surv(time, status) ~ age + sex + ph.ecog + strata(inst), data = lung, weights = w,
              control = ctrl)
cc <- wfit$concordance
writeLines(obj(c(
  '"case": "concordance_lung_weighted_strata"',
  '"dataset": "lung"',
  '"data_file": "data/lung.csv"',
  '"formula": "Surv(time, status) ~ age + sex + ph.ecog + strata(inst), weights = 1 + (row % 3)"',
  sprintf('"terms": %s', paste0("[", paste(vapply(names(coef(wfit)), str1, ""), collapse = ", "), "]")),
  sprintf('"coef": %s', named(coef(wfit), names(coef(wfit)))),
  sprintf('"concordance": %s', named(cc, names(cc))),
  generator)), "concordance_lung_weighted_strata.json", sep = "")

# ---------------------------------------------------------------- GLMs
glm_json <- function(case, fit, formula_text, data_file, offset_text = NULL, weights_text = NULL) {
  s <- summary(fit)
  b <- coef(fit); nm <- names(b)
  cf <- s$coefficients
  fam <- fit$family$family
  stat_name <- if (fam == "gaussian") "t" else "z"
  ratio_name <- switch(fam, binomial = "odds_ratio", poisson = "rate_ratio", NULL)
  disp <- s$dispersion
  lrt_stat <- (fit$null.deviance - fit$deviance) / disp
  lrt_df <- fit$df.null - fit$df.residual
  fields <- c(
    sprintf('"case": %s', str1(case)),
    sprintf('"data_file": %s', str1(data_file)),
    sprintf('"formula": %s', str1(formula_text)),
    sprintf('"family": %s', str1(sprintf("%s(link = '%s')", fam, fit$family$link))),
    if (!is.null(offset_text)) sprintf('"offset": %s', str1(offset_text)),
    if (!is.null(weights_text)) sprintf('"weights": %s', str1(weights_text)),
    '"method": "IRLS (glm.fit)"',
    sprintf('"n": %s', num(nobs(fit))),
    sprintf('"terms": [%s]', paste(vapply(nm, str1, ""), collapse = ", ")),
    sprintf('"coef": %s', named(b, nm)),
    sprintf('"se": %s', named(cf[, 2], nm)),
    sprintf('"%s": %s', stat_name, named(cf[, 3], nm)),
    sprintf('"p": %s', named(cf[, 4], nm)),
    if (!is.null(ratio_name)) sprintf('"%s": %s', ratio_name, named(exp(b), nm)),
    sprintf('"var": %s', mat(vcov(fit))),
    sprintf('"dispersion": %s', num(disp)),
    sprintf('"deviance": %s', num(fit$deviance)),
    sprintf('"null_deviance": %s', num(fit$null.deviance)),
    sprintf('"df_residual": %s', num(fit$df.residual)),
    sprintf('"df_null": %s', num(fit$df.null)),
    sprintf('"loglik": %s', num(as.numeric(logLik(fit)))),
    sprintf('"aic": %s', num(AIC(fit))),
    sprintf('"lrt": {"statistic": %s, "df": %s, "p": %s}', num(lrt_stat), num(lrt_df),
            num(pchisq(lrt_stat, lrt_df, lower.tail = FALSE))),
    sprintf('"iterations": %d', fit$iter),
    sprintf('"converged": %s', if (fit$converged) "true" else "false"),
    '"notes": ["glm.control(epsilon = 1e-14, maxit = 100)", "lrt = (null_deviance - deviance) / dispersion on df_null - df_residual (for gaussian the scaled-deviance chi-square test of the whole model)"]',
    generator)
  writeLines(obj(fields), paste0(case, ".json"), sep = "")
}

ctl <- glm.control(epsilon = 1e-14, maxit = 100)
g1 <- glm(bwt ~ age + lwt + smoke, family = gaussian, data = birthwt, control = ctl)
glm_json("glm_gaussian_birthwt", g1, "bwt ~ age + lwt + smoke", "data/birthwt.csv")

g2 <- glm(ptl ~ age + smoke + ht, family = poisson, offset = log(age), data = birthwt, control = ctl)
glm_json("glm_poisson_birthwt_offset", g2, "ptl ~ age + smoke + ht", "data/birthwt.csv", "log(age)")

g3 <- glm(ftv ~ age + race_black + race_other + smoke, family = poisson, data = birthwt, control = ctl)
glm_json("glm_poisson_birthwt", g3, "ftv ~ age + race_black + race_other + smoke", "data/birthwt.csv")

# Prior weights: gaussian with weights 1 + (row %% 3); binomial proportions with
# the number of trials as weights (birthwt aggregated by smoke, ht, race).
birthwt$w <- 1 + (seq_len(nrow(birthwt)) %% 3)
g4 <- glm(bwt ~ age + lwt + smoke, family = gaussian, data = birthwt, weights = w, control = ctl)
glm_json("glm_gaussian_birthwt_weighted", g4, "bwt ~ age + lwt + smoke", "data/birthwt.csv",
         weights_text = "1 + (row % 3)")

agg <- aggregate(cbind(low, one = 1) ~ smoke + ht + race_black + race_other, data = birthwt, FUN = sum)
agg$prop <- agg$low / agg$one
agg <- agg[order(agg$smoke, agg$ht, agg$race_black, agg$race_other), ]
out <- agg[, c("smoke", "ht", "race_black", "race_other", "low", "one")]
out$prop <- sprintf("%.17g", agg$prop)
write.table(out, "birthwt_agg.csv", sep = ",", quote = FALSE, row.names = FALSE)
g5 <- glm(prop ~ smoke + ht + race_black + race_other, family = binomial, data = agg, weights = one,
          control = ctl)
glm_json("glm_binomial_birthwt_agg", g5, "prop ~ smoke + ht + race_black + race_other",
         "../ref-extra/birthwt_agg.csv", weights_text = "one")
