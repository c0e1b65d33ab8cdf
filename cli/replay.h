/*  replay: `pbtctl replay` writes one soccer episode as an animated SVG. */
#ifndef PBT_REPLAY_H
#define PBT_REPLAY_H

#include "ctl.h"

//  pbtctl replay. argv[0] is "replay". Returns a pbtctl exit code.
//  Needs pbtd only when an agent (not a script) plays.
int replay_cmd (ctl_t *ctl, int argc, char **argv);

//  True if argv asks only for scripted teams (no pbtd needed).
bool replay_scripts_only (int argc, char **argv);

#endif
