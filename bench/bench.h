/*  pbt-bench subcommands. Each prints its figures as key=value lines. */
#ifndef PBT_BENCH_H
#define PBT_BENCH_H

//  pbt-bench ppo: PPO self-play on RPS, the configuration of
//  shared/bench/ppo_torch_rps.py; prints samples_per_s=N.
int bench_ppo_main (int argc, char **argv);

//  pbt-bench soccer-env: raw stepping speed; prints steps_per_s=N.
int bench_soccer_main (int argc, char **argv);

//  pbt-bench soccer-learn: train team 0 against a script or itself and
//  print its win rates against random and chaser over frames (CSV).
int bench_soccer_learn_main (int argc, char **argv);

//  pbt-bench load: simulated workers against a real pbtd.
int bench_load_main (int argc, char **argv);

//  Monotonic clock in seconds, for timing loops.
double bench_now (void);

#endif
