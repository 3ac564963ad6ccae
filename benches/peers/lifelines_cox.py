"""Peer benchmark: lifelines Cox fit on a CSV written by `seh bench cox`.

Usage: python3 lifelines_cox.py FILE.csv 0|1(counting process) P
Prints one JSON line: fit and whole-command seconds, peak RSS, coefficients.
lifelines handles ties with Efron's method only.
"""
import json
import resource
import sys
import time
import warnings

t_start = time.perf_counter()
warnings.simplefilter("ignore")
import lifelines  # noqa: E402
import pandas as pd  # noqa: E402

path, cp, p = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
df = pd.read_csv(path)
xs = [f"x{i + 1}" for i in range(p)]
t_fit = time.perf_counter()
if cp:
    df["id"] = range(len(df))  # rows are independent intervals for the fit itself
    m = lifelines.CoxTimeVaryingFitter()
    m.fit(df[["id", "start", "stop", "event"] + xs], id_col="id", start_col="start", stop_col="stop", event_col="event")
else:
    m = lifelines.CoxPHFitter()
    m.fit(df[["time", "event"] + xs], duration_col="time", event_col="event")
fit_s = time.perf_counter() - t_fit
total_s = time.perf_counter() - t_start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({
    "peer": f"lifelines {lifelines.__version__}",
    "fit_seconds": fit_s,
    "total_seconds": total_s,
    "peak_rss_mb": peak,
    "loglik": float(m.log_likelihood_),
    "coef": [float(m.params_[x]) for x in xs],
}))
