"""A long run's history written straight into a pbtd database (schema 5),
for tests that need a large one in seconds: done assignments with their
seats and per-result aggregates, every agent's score and rating series
with every resolution level full (as db_series.c's merging leaves them after
about 128 * 2^levels results per agent), and payoff counters. The
population, its snapshots and its state store are pbtd's own (start and
stop pbtd on the file first). Standard library only."""
import random
import sqlite3
import time

LEVEL_POINTS = 128      # DB_SERIES_LEVEL_POINTS


def fill(db, results=20000, levels=10, span_s=7 * 86400, seed=1):
    rng = random.Random(seed)
    con = sqlite3.connect(db, timeout=30)
    agents = [r[0] for r in con.execute("SELECT id FROM agents ORDER BY id")]
    versions = dict(con.execute("SELECT id, version FROM agents"))
    now = int(time.time() * 1000)
    t0 = now - span_s * 1000
    first = con.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM assignments").fetchone()[0]
    asg, seats, rseats = [], [], []
    rating = {a: 0.0 for a in agents}
    pop = 0
    for k in range(results):
        aid = first + k
        ts = t0 + (now - 60000 - t0) * k // results
        i, j = rng.sample(agents, 2)
        eps = 3264
        wins = rng.randint(0, eps)
        draws = rng.randint(0, eps - wins)
        losses = eps - wins - draws
        delta = rng.uniform(-2, 2)
        pop += 2 * 32768
        asg.append((aid, "done", "train", "synth", ts - 2000, ts + 60000, aid))
        for slot, (me, opp, w, l, d) in enumerate(((i, j, wins, losses, delta), (j, i, losses, wins, -delta))):
            seats.append((aid, slot, me, versions[me], 1, 0))
            before = rating[me]
            rating[me] += d
            rseats.append((aid, slot, me, None, slot, f"agt_{opp}", eps, w, draws, l, float(w - l),
                           before, rating[me], 32768, ts, 2000, pop))
    con.executemany("INSERT INTO assignments (id, state, kind, worker, created_at, deadline_ms, seed) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", asg)
    con.executemany("INSERT INTO assignment_seats (assignment_id, slot, agent_id, version, train, frozen) "
                    "VALUES (?, ?, ?, ?, ?, ?)", seats)
    con.executemany("INSERT INTO result_seats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rseats)
    # Series: levels-1 .. 0, LEVEL_POINTS points each, oldest first, contiguous in time.
    n_points = levels * LEVEL_POINTS
    for a in agents:
        for name in ("score", "rating"):
            cur = con.execute("INSERT INTO series (agent_id, name) VALUES (?, ?)", (a, name))
            sid = cur.lastrowid
            rows, seq, t = [], 0, t0
            step = (now - t0) // (n_points * 2)
            for level in range(levels - 1, -1, -1):
                for _ in range(LEVEL_POINTS):
                    seq += 1
                    t1 = t + step * (1 << level) // (1 << (levels - 1)) + 1
                    v = rng.uniform(-3, 3)
                    n = 1 << level
                    rows.append((sid, level, seq, t, t1, seq * 65536, n, n * 3264.0, v, v - 1, v + 1, v,
                                 f"agt_{(a + 1) % len(agents)}" if level == 0 else None))
                    t = t1 + 1
            con.executemany("INSERT INTO series_points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    for a in agents:
        for b in agents:
            if a != b:
                con.execute("INSERT INTO payoff VALUES (?, 0, ?, 0, 6528, 3000, 528, 3000, 0, "
                            "3264, 1500, 264, 1500, 0, 3264, 1500, 264, 1500, 0, ?) "
                            "ON CONFLICT DO NOTHING", (a, b, now))
    con.commit()
    con.close()
    return n_points
