"""`make demo`: the end-to-end demo (lands with the end-to-end issue)."""

print("make demo: not yet — the end-to-end demo lands with the end-to-end issue (see README).")
