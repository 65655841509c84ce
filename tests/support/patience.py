"""How long a test waits for an event that must come.

It only bounds a hang: a busy 2-core machine can take a minute for what takes a second on a
quiet one, so no test may use it (or any clock) as a speed check. Below pytest's own
per-test timeout, so a hang still fails with the awaited event named.
"""

PATIENCE_S = 120.0
