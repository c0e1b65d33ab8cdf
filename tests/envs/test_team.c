/*  The seat-to-team rule (envspec_team_of, the one pbtd, pbtctl and the
    worker use) on seat layouts worked by hand. It links only the spec
    library, as pbtd does. */
#include <criterion/criterion.h>

#include "envspec.h"

//  Teams of players 0..P-1 against the expected layout.
static void
s_expect (int P, int n_teams, const int *want)
{
    for (int p = 0; p < P; p++)
        cr_expect_eq (envspec_team_of (P, n_teams, p), want [p],
                      "%d players in %d teams: player %d on team %d, want %d",
                      P, n_teams, p, envspec_team_of (P, n_teams, p), want [p]);
}

Test (team, one_against_one)
{
    s_expect (2, 2, (int []) { 0, 1 });
}

Test (team, two_against_two)
{
    //  Players split in index order: 0 and 1 against 2 and 3 (not 0,2 v 1,3).
    s_expect (4, 2, (int []) { 0, 0, 1, 1 });
}

Test (team, three_teams_of_two_and_free_for_all)
{
    s_expect (6, 3, (int []) { 0, 0, 1, 1, 2, 2 });
    s_expect (3, 3, (int []) { 0, 1, 2 });
}

Test (team, one_team)
{
    s_expect (2, 1, (int []) { 0, 0 });
}
