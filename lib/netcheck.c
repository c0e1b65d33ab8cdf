#include "netcheck.h"

#include <errno.h>
#include <ifaddrs.h>
#include <libgen.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

//  libzmq lists the interfaces (getifaddrs: a netlink socket) whenever it
//  binds tcp, to accept an interface name as the host; it asserts that
//  this works. is_iface: whether host names one of them.
static int
s_interfaces (const char *host, bool *is_iface, char *err, size_t err_len)
{
    struct ifaddrs *list;
    if (getifaddrs (&list) != 0) {
        snprintf (err, err_len, "cannot list the network interfaces (%s), which libzmq needs to "
                  "bind tcp; under systemd, RestrictAddressFamilies= must allow AF_NETLINK",
                  strerror (errno));
        return -1;
    }
    *is_iface = false;
    for (struct ifaddrs *i = list; i; i = i->ifa_next)
        if (i->ifa_name && strcmp (i->ifa_name, host) == 0)
            *is_iface = true;
    freeifaddrs (list);
    return 0;
}

static int
s_check_tcp (const char *addr, bool bind, char *err, size_t err_len)
{
    const char *semi = strrchr (addr, ';');     // "source;host:port" on connect
    if (semi)
        addr = semi + 1;
    const char *colon = strrchr (addr, ':');
    if (!colon || colon == addr || !colon [1]) {
        snprintf (err, err_len, "expected tcp://HOST:PORT");
        return -1;
    }
    char host [256];
    size_t n = (size_t) (colon - addr);
    if (n >= sizeof host) {
        snprintf (err, err_len, "host name too long");
        return -1;
    }
    memcpy (host, addr, n);
    host [n] = 0;
    if (host [0] == '[' && n >= 2 && host [n - 1] == ']') {
        memmove (host, host + 1, n - 2);
        host [n - 2] = 0;
    }
    const char *port = colon + 1;
    if (!(bind && strcmp (port, "*") == 0)) {
        char *end;
        long p = strtol (port, &end, 10);
        if (*end || p < (bind ? 0 : 1) || p > 65535) {
            snprintf (err, err_len, "port '%s' is not a number in [%d, 65535]%s", port,
                      bind ? 0 : 1, bind ? " or *" : "");
            return -1;
        }
    }
    bool is_iface = false;
    if (bind && s_interfaces (host, &is_iface, err, err_len))
        return -1;
    if (is_iface || strcmp (host, "*") == 0)
        return 0;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo (host, NULL, &hints, &res);
    if (res)
        freeaddrinfo (res);
    if (rc == 0)
        return 0;
    snprintf (err, err_len, "cannot resolve host '%s': %s", host,
              rc == EAI_SYSTEM ? strerror (errno) : gai_strerror (rc));
    return rc == EAI_AGAIN ? 1 : -1;
}

static int
s_check_ipc (const char *path, char *err, size_t err_len)
{
    char copy [512];
    snprintf (copy, sizeof copy, "%s", path);
    const char *dir = dirname (copy);
    struct stat st;
    errno = 0;
    if (stat (dir, &st) != 0 || !S_ISDIR (st.st_mode)) {
        snprintf (err, err_len, "the socket's directory %s: %s", dir,
                  errno ? strerror (errno) : "not a directory");
        return -1;
    }
    return 0;
}

int
netcheck_endpoint (const char *endpoint, bool bind, char *err, size_t err_len)
{
    if (strncmp (endpoint, "tcp://", 6) == 0)
        return s_check_tcp (endpoint + 6, bind, err, err_len);
    if (bind && strncmp (endpoint, "ipc://", 6) == 0 && endpoint [6] != '@')
        return s_check_ipc (endpoint + 6, err, err_len);
    return 0;
}
