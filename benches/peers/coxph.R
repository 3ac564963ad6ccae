# Peer benchmark: R survival::coxph on a CSV written by `seh bench cox`.
# Usage: Rscript coxph.R FILE.csv efron|breslow 0|1(counting process) P
# Prints one JSON line: fit and whole-command seconds, peak RSS, coefficients.
t_start <- proc.time()[["elapsed"]]
args <- commandArgs(TRUE)
file <- args[1]; ties <- args[2]; cp <- args[3] == "1"; p <- as.integer(args[4])
suppressMessages(library(survival))
reader <- "utils::read.csv"
if (requireNamespace("data.table", quietly = TRUE)) {
  d <- as.data.frame(data.table::fread(file))
  reader <- "data.table::fread"
} else {
  d <- read.csv(file)
}
xs <- paste0("x", seq_len(p))
lhs <- if (cp) "Surv(start, stop, event)" else "Surv(time, event)"
f <- as.formula(paste(lhs, "~", paste(xs, collapse = " + ")))
t_fit <- proc.time()[["elapsed"]]
fit <- coxph(f, data = d, ties = ties)
fit_s <- proc.time()[["elapsed"]] - t_fit
total_s <- proc.time()[["elapsed"]] - t_start
st <- readLines("/proc/self/status")
hwm <- as.numeric(gsub("[^0-9]", "", st[grepl("^VmHWM", st)])) / 1024
cat(sprintf('{"peer":"R survival %s coxph","reader":"%s","fit_seconds":%.6f,"total_seconds":%.6f,"peak_rss_mb":%.1f,"iterations":%d,"loglik":%.17g,"coef":[%s]}\n',
  as.character(packageVersion("survival")), reader, fit_s, total_s, hwm, fit$iter, fit$loglik[2],
  paste(sprintf("%.17g", coef(fit)), collapse = ",")))
