/*  pbtd: the population-based training daemon.

    pbtd [--config FILE] [--db PATH] [--worker-endpoint EP]
         [--control-endpoint EP] [--seed N] [--log-level L]
    (every option: pbtd --help, and the pbtd(8) man page)

    Flags override the file; without --config the embedded default
    (rock-paper-scissors, population 8) is used. SIGTERM/SIGINT stop it
    cleanly, SIGHUP reloads [pbt] and [hparam.*] from the file.
*/
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "netcheck.h"
#include "pbt_version.h"
#include "server.h"
#include "settings.h"

static int s_sigpipe [2] = { -1, -1 };

static void
s_on_signal (int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char) sig;
    if (write (s_sigpipe [1], &b, 1) < 0) {
        //  Pipe full: enough signals are already pending.
    }
    errno = saved;
}

//  An endpoint that cannot work stops pbtd here, named by where it came
//  from, before libzmq would abort on it or the database is opened.
static int
s_check_endpoint (const char *ep, const char *flag, const char *key, const char *config_path)
{
    char err [512];
    int rc = netcheck_endpoint (ep, true, err, sizeof err);
    if (rc == 0)
        return 0;
    if (flag)
        fprintf (stderr, "pbtd: %s %s: %s\n", flag, ep, err);
    else
        fprintf (stderr, "pbtd: %s: [daemon] %s = %s: %s\n",
                 config_path ? config_path : "embedded default", key, ep, err);
    return rc < 0 ? -1 : 0;
}

//  A default as lib/settings.c's table has it.
static const char *
s_dflt (const char *section, const char *name)
{
    return settings_find (section, name)->dflt;
}

static void
s_usage (FILE *f)
{
    fprintf (f,
        "usage: pbtd [--config FILE] [--db PATH] [--worker-endpoint EP]\n"
        "            [--control-endpoint EP] [--seed N] [--log-level L]\n"
        "  -c, --config FILE      INI configuration (default: embedded RPS, population 8)\n"
        "  --db PATH              SQLite database (default %s)\n"
        "  --worker-endpoint EP   ROUTER for workers (default %s)\n"
        "  --control-endpoint EP  ROUTER for pbtctl (default %s)\n"
        "  --seed N               population seed (default %s)\n"
        "  --log-level L          debug|info|warn|error (default %s)\n"
        "  --cert FILE            CURVE certificate of pbtd ([security] cert)\n"
        "  --allowed-keys DIR     public certificates allowed to connect ([security] allowed_keys)\n"
        "  --plaintext            allow plaintext on endpoints that leave this host\n"
        "  --repair               start on a damaged state store: each agent whose records\n"
        "                         do not read back falls back to its newest intact snapshot\n"
        "  --print-config         print the configuration (--config FILE or the embedded\n"
        "                         default) with every key and its default, and exit\n"
        "  --version              print the version and exit\n"
        "  -h, --help             this text\n",
        s_dflt ("daemon", "db"), s_dflt ("daemon", "worker_endpoint"),
        s_dflt ("daemon", "control_endpoint"), s_dflt ("daemon", "seed"),
        s_dflt ("daemon", "log_level"));
}

int
main (int argc, char **argv)
{
    static const struct option opts [] = {
        { "config", required_argument, NULL, 'c' },
        { "db", required_argument, NULL, 'd' },
        { "worker-endpoint", required_argument, NULL, 'w' },
        { "control-endpoint", required_argument, NULL, 'C' },
        { "seed", required_argument, NULL, 's' },
        { "log-level", required_argument, NULL, 'l' },
        { "print-config", no_argument, NULL, 'p' },
        { "cert", required_argument, NULL, 'K' },
        { "allowed-keys", required_argument, NULL, 'A' },
        { "plaintext", no_argument, NULL, 'P' },
        { "repair", no_argument, NULL, 'R' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    const char *config_path = NULL, *db = NULL, *wep = NULL, *cep = NULL, *seed = NULL,
               *level = NULL, *cert = NULL, *allowed = NULL;
    bool plaintext = false, repair = false, print = false;
    //  Every result and assignment allocates and frees buffers of a few
    //  hundred KiB. glibc's defaults hand those to mmap or trim them off
    //  the heap's top, so each one page-faults its memory in again
    //  (measured: a tenth of pbtd's CPU under load). Keep them in the
    //  heap: the peak is bounded by the messages in flight.
    mallopt (M_MMAP_THRESHOLD, 8 << 20);
    mallopt (M_TRIM_THRESHOLD, 64 << 20);
    int c;
    while ((c = getopt_long (argc, argv, "c:h", opts, NULL)) != -1)
        switch (c) {
            case 'c': config_path = optarg; break;
            case 'd': db = optarg; break;
            case 'w': wep = optarg; break;
            case 'C': cep = optarg; break;
            case 's': seed = optarg; break;
            case 'l': level = optarg; break;
            case 'p': print = true; break;
            case 'K': cert = optarg; break;
            case 'A': allowed = optarg; break;
            case 'P': plaintext = true; break;
            case 'R': repair = true; break;
            case 'h': s_usage (stdout); return 0;
            case 'V': printf ("pbtd %s\n", PBT_VERSION); return 0;
            default: s_usage (stderr); return 2;
        }
    if (optind < argc) {
        fprintf (stderr, "pbtd: unexpected argument '%s'\n", argv [optind]);
        s_usage (stderr);
        return 2;
    }
    log_set_component ("pbtd");
    if (print) {
        char perr [1024];
        if (config_print (stdout, config_path, perr, sizeof perr)) {
            fprintf (stderr, "pbtd: %s\n", perr);
            return 1;
        }
        return 0;
    }
    //  The database, its WAL and SHM, the state store and the lock file
    //  hold the population: readable by pbtd's user only, wherever it runs.
    umask (077);
    static config_t cfg;
    char err [1024];
    if (config_load (&cfg, config_path, err, sizeof err)) {
        fprintf (stderr, "pbtd: %s\n", err);
        return 1;
    }
    if (db)
        snprintf (cfg.db, sizeof cfg.db, "%s", db);
    if (wep)
        snprintf (cfg.worker_endpoint, sizeof cfg.worker_endpoint, "%s", wep);
    if (cep)
        snprintf (cfg.control_endpoint, sizeof cfg.control_endpoint, "%s", cep);
    if (seed) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull (seed, &end, 10);
        if (errno || end == seed || *end || seed [0] == '-') {
            fprintf (stderr, "pbtd: --seed: expected an unsigned integer, got '%s'\n", seed);
            return 2;
        }
        cfg.seed = v;
    }
    if (level) {
        int l = log_level_parse (level);
        if (l < 0) {
            fprintf (stderr, "pbtd: --log-level: expected debug, info, warn or error\n");
            return 2;
        }
        cfg.log_level = l;
    }
    log_set_level ((log_level_t) cfg.log_level);
    if (cert)
        snprintf (cfg.cert, sizeof cfg.cert, "%s", cert);
    if (allowed)
        snprintf (cfg.allowed_keys, sizeof cfg.allowed_keys, "%s", allowed);
    if (plaintext)
        cfg.plaintext = true;
    cfg.repair = repair;
    if (config_check_security (&cfg, err, sizeof err)) {
        fprintf (stderr, "pbtd: %s\n", err);
        return 1;
    }
    if (s_check_endpoint (cfg.worker_endpoint, wep ? "--worker-endpoint" : NULL, "worker_endpoint",
                          config_path)
        || s_check_endpoint (cfg.control_endpoint, cep ? "--control-endpoint" : NULL, "control_endpoint",
                             config_path))
        return 1;

    //  Signals become bytes on a pipe the reactor polls, so shutdown and
    //  reload happen between messages, never inside a transaction. (Not a
    //  signalfd: libraries start threads before main, e.g. OpenBLAS's
    //  pool, and a signal delivered to one of those would bypass it.)
    zsys_handler_set (NULL);
    if (pipe2 (s_sigpipe, O_NONBLOCK | O_CLOEXEC)) {
        perror ("pbtd: pipe2");
        return 1;
    }
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    sigaction (SIGHUP, &sa, NULL);
    int sigfd = s_sigpipe [0];
    zsys_init ();
    zsys_set_logstream (NULL);
    log_info ("starting", "config=%s db=%s seed=%llu env=%s size=%u preset=%s",
              config_path ? config_path : "<embedded>", cfg.db,
              (unsigned long long) cfg.seed, cfg.env, cfg.size, cfg.preset);
    server_t *server = server_new (&cfg, sigfd);
    int rc = 1;
    if (server) {
        rc = server_run (server) == 0 ? 0 : 1;
        server_destroy (&server);
    }
    close (s_sigpipe [0]);
    close (s_sigpipe [1]);
    zsys_shutdown ();
    return rc;
}
