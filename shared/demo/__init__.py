"""`make demo`: the whole loop on one machine (sandbox, receiver, worker, beat) and a report."""
