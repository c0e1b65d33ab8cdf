#include "wconfig.h"
#include "netcheck.h"

#include "ini.h"
#include "pbt_version.h"
#include "proto.h"
#include "settings.h"

#include <assert.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  A default as lib/settings.c's table has it.
static const char *
s_dflt (const char *name)
{
    return settings_find ("worker", name)->dflt;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: pbt-worker --connect EP [options]\n"
        "  -c, --connect EP      pbtd worker endpoint (default %s)\n"
        "  --id NAME             worker id reported to pbtd (default host:pid)\n"
        "  --max-assignments N   exit after delivering N results (default: run forever)\n"
        "  --reply-timeout-ms N  resend hello/result after N ms without a reply (default %s)\n"
        "  --log-level L         debug|info|warn|error (default %s)\n"
        "  --config FILE         INI file with a [worker] section (flags override it)\n"
        "  --server-key KEY      pbtd's CURVE public key (Z85, 40 chars) or a file holding it\n"
        "  --cert FILE           this worker's CURVE certificate (pbtctl keygen); FILE_secret is read\n"
        "  --plaintext           talk without CURVE (only where the network is trusted)\n"
        "  --env-path DIRS       directories of game plugins, ':'-separated (sets PBT_ENV_PATH)\n"
        "  --version             print the version and exit\n"
        "  -h, --help            this text\n",
        s_dflt ("connect"), s_dflt ("reply_timeout_ms"), s_dflt ("log_level"));
}

//  A Z85 public key given inline (40 chars) or as a certificate file.
static int
s_set_server_key (wconfig_t *cfg, const char *value, const char *where)
{
    if (strlen (value) == 40) {
        snprintf (cfg->server_public_key, sizeof cfg->server_public_key, "%s", value);
        return 0;
    }
    zcert_t *cert = zcert_load (value);
    if (!cert) {
        fprintf (stderr, "pbt-worker: %s: expected a 40-character Z85 key or a certificate file, got '%s'\n",
                 where, value);
        return -1;
    }
    snprintf (cfg->server_public_key, sizeof cfg->server_public_key, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
    return 0;
}

//  Where cfg->connect came from, for the start-up check's message.
static char s_connect_where [600] = "default connect";

//  A [worker] key, already checked against the table, into cfg.
static int
s_set (wconfig_t *cfg, const setting_t *s, const char *text, double v, const char *where)
{
    if (!strcmp (s->name, "connect")) {
        snprintf (cfg->connect, sizeof cfg->connect, "%s", text);
        if (where)
            snprintf (s_connect_where, sizeof s_connect_where, "%s", where);
    }
    else
    if (!strcmp (s->name, "id"))
        snprintf (cfg->worker_id, sizeof cfg->worker_id, "%s", text);
    else
    if (!strcmp (s->name, "server_key"))
        return s_set_server_key (cfg, text, where ? where : "server_key");
    else
    if (!strcmp (s->name, "cert"))
        snprintf (cfg->cert_path, sizeof cfg->cert_path, "%s", text);
    else
    if (!strcmp (s->name, "plaintext"))
        cfg->plaintext = v != 0;
    else
    if (!strcmp (s->name, "log_level"))
        cfg->log_level = (log_level_t) v;
    else
    if (!strcmp (s->name, "reply_timeout_ms"))
        cfg->reply_timeout_ms = (int) v;
    else
    if (!strcmp (s->name, "env_path"))
        //  Where games are found (spec/envspec.h reads PBT_ENV_PATH).
        setenv ("PBT_ENV_PATH", text, 1);
    else
        assert (!"a [worker] key of lib/settings.c that pbt-worker does not store");
    return 0;
}

//  A flag standing for a [worker] key: the same checks as in the file.
static int
s_flag (wconfig_t *cfg, const char *name, const char *text, const char *flag)
{
    const setting_t *s = settings_find ("worker", name);
    assert (s);
    double v;
    char why [300];
    if (settings_parse (s, text, &v, why, sizeof why)) {
        fprintf (stderr, "pbt-worker: %s: %s\n", flag, why);
        return -1;
    }
    return s_set (cfg, s, text, v, flag);
}

static int
s_load_file (wconfig_t *cfg, const char *path)
{
    char err [512];
    ini_t *ini = ini_load_file (path, err, sizeof err);
    if (!ini) {
        fprintf (stderr, "pbt-worker: %s\n", err);
        return -1;
    }
    int rc = -1;
    for (size_t i = 0; i < ini_count (ini); i++) {
        const ini_entry_t *e = ini_entry (ini, i);
        if (strcmp (e->section, "worker") != 0) {
            fprintf (stderr, "pbt-worker: %s:%d: unknown section [%s], expected [worker]\n",
                     path, e->line, e->section);
            goto done;
        }
        if (!e->key)
            continue;
        char where [600];
        snprintf (where, sizeof where, "%s:%d: %s", path, e->line, e->key);
        //  The table decides what is a key and what it accepts; below,
        //  only where each value goes.
        const setting_t *s = settings_find ("worker", e->key);
        char why [400];
        double v;
        if (!s) {
            settings_known ("worker", why, sizeof why);
            fprintf (stderr, "pbt-worker: %s:%d: unknown key '%s' in [worker] (expected %s)\n",
                     path, e->line, e->key, why);
            goto done;
        }
        if (settings_parse (s, e->value, &v, why, sizeof why)) {
            fprintf (stderr, "pbt-worker: %s: %s\n", where, why);
            goto done;
        }
        if (s_set (cfg, s, e->value, v, where))
            goto done;
    }
    rc = 0;
done:
    ini_destroy (&ini);
    return rc;
}

int
wconfig_parse (wconfig_t *cfg, int argc, char **argv)
{
    memset (cfg, 0, sizeof *cfg);
    //  The table's defaults, through the same stores as a file's keys.
    for (size_t i = 0; i < settings_count (); i++) {
        const setting_t *s = settings_at (i);
        double v;
        char why [200];
        if (strcmp (s->section, "worker") || !s->dflt)
            continue;
        if (settings_parse (s, s->dflt, &v, why, sizeof why) || s_set (cfg, s, s->dflt, v, NULL))
            return -1;
    }
    char host [128] = "localhost";
    gethostname (host, sizeof host - 1);
    snprintf (cfg->worker_id, sizeof cfg->worker_id, "%s:%d", host, (int) getpid ());
    cfg->request_retry_ms = 2000;

    //  The file is read first so that flags, parsed after it, override it.
    for (int a = 1; a < argc - 1; a++)
        if (strcmp (argv [a], "--config") == 0 && s_load_file (cfg, argv [a + 1]) != 0)
            return -1;

    static const struct option opts [] = {
        { "config", required_argument, NULL, 'f' },
        { "server-key", required_argument, NULL, 'k' },
        { "cert", required_argument, NULL, 'C' },
        { "plaintext", no_argument, NULL, 'p' },
        { "connect", required_argument, NULL, 'c' },
        { "id", required_argument, NULL, 'i' },
        { "max-assignments", required_argument, NULL, 'm' },
        { "reply-timeout-ms", required_argument, NULL, 't' },
        { "log-level", required_argument, NULL, 'l' },
        { "env-path", required_argument, NULL, 'e' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    int c;
    optind = 1;
    while ((c = getopt_long (argc, argv, "c:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
            case 'c':
                snprintf (cfg->connect, sizeof cfg->connect, "%s", optarg);
                snprintf (s_connect_where, sizeof s_connect_where, "--connect");
                break;
            case 'i':
                snprintf (cfg->worker_id, sizeof cfg->worker_id, "%s", optarg);
                break;
            case 'm':
                cfg->max_assignments = strtoull (optarg, &end, 10);
                if (!*optarg || *end) {
                    fprintf (stderr, "pbt-worker: --max-assignments: expected a whole number, got '%s'\n", optarg);
                    return -1;
                }
                break;
            case 't':
                if (s_flag (cfg, "reply_timeout_ms", optarg, "--reply-timeout-ms"))
                    return -1;
                break;
            case 'l':
                if (s_flag (cfg, "log_level", optarg, "--log-level"))
                    return -1;
                break;
            case 'f':
                break;      // already read
            case 'e':
                setenv ("PBT_ENV_PATH", optarg, 1);
                break;
            case 'k':
                if (s_set_server_key (cfg, optarg, "--server-key") != 0)
                    return -1;
                break;
            case 'C':
                snprintf (cfg->cert_path, sizeof cfg->cert_path, "%s", optarg);
                break;
            case 'p':
                cfg->plaintext = 1;
                break;
            case 'h':
                s_usage (stdout);
                return 1;
            case 'V':
                printf ("pbt-worker %s\n", PBT_VERSION);
                return 1;
            default:
                s_usage (stderr);
                return -1;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "pbt-worker: unexpected argument '%s'\n", argv [optind]);
        s_usage (stderr);
        return -1;
    }
    bool curve = cfg->server_public_key [0] || cfg->cert_path [0];
    if (curve && !(cfg->server_public_key [0] && cfg->cert_path [0])) {
        fprintf (stderr, "pbt-worker: CURVE needs both a server key (--server-key) and a certificate (--cert)\n");
        return -1;
    }
    if (curve && cfg->plaintext) {
        fprintf (stderr, "pbt-worker: --plaintext and CURVE keys contradict each other\n");
        return -1;
    }
    //  Plaintext only when asked for, except on ipc:// and inproc://, which
    //  file permissions guard; a loopback tcp port is open to every local
    //  user, so it needs CURVE or --plaintext like any other.
    if (!curve && !cfg->plaintext && !proto_endpoint_is_local (cfg->connect)) {
        fprintf (stderr, "pbt-worker: %s is a tcp endpoint: configure CURVE (--server-key, --cert) "
                         "or say --plaintext explicitly\n", cfg->connect);
        return -1;
    }
    //  libzmq would retry a host it cannot resolve forever, silently; a
    //  temporary failure (no DNS yet) is only reported.
    char err [512];
    int rc = netcheck_endpoint (cfg->connect, false, err, sizeof err);
    if (rc) {
        fprintf (stderr, "pbt-worker: %s%s%s: %s%s\n", s_connect_where,
                 s_connect_where [0] == '-' ? " " : " = ", cfg->connect, err, rc > 0 ? " (retrying)" : "");
        if (rc < 0)
            return -1;
    }
    return 0;
}

int
wconfig_apply_security (const wconfig_t *cfg, zsock_t *sock)
{
    if (!cfg->cert_path [0])
        return 0;
    zcert_t *cert = zcert_load (cfg->cert_path);
    if (!cert) {
        log_error ("cert_load_failed", "path=%s hint=\"make one with pbtctl keygen\"", cfg->cert_path);
        return -1;
    }
    zcert_apply (cert, sock);
    zsock_set_curve_serverkey (sock, cfg->server_public_key);
    log_info ("curve_enabled", "public_key=%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
    return 0;
}

void
wconfig_clear (wconfig_t *cfg)
{
    (void) cfg;
}
