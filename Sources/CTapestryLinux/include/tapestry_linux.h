#ifndef TAPESTRY_LINUX_H
#define TAPESTRY_LINUX_H

// What Glibc's Swift module does not import: the TUN/TAP ioctls are _IOW macros, and
// <linux/if_tun.h> and <sys/epoll.h> are not part of the module. Constants are copied into
// static consts that Swift can see.
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/eventfd.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>
#include "tapestry_batch_io.h"

static const unsigned long TAPESTRY_TUNSETIFF = TUNSETIFF;
static const unsigned long TAPESTRY_TUNSETOFFLOAD = TUNSETOFFLOAD;
static const unsigned long TAPESTRY_TUNSETVNETHDRSZ = TUNSETVNETHDRSZ;
static const unsigned long TAPESTRY_TUNGETFEATURES = TUNGETFEATURES;
static const unsigned long TAPESTRY_SIOCGIFFLAGS = SIOCGIFFLAGS;
static const unsigned long TAPESTRY_SIOCSIFFLAGS = SIOCSIFFLAGS;
static const short TAPESTRY_IFF_TAP = IFF_TAP;
static const short TAPESTRY_IFF_NO_PI = IFF_NO_PI;
static const short TAPESTRY_IFF_VNET_HDR = IFF_VNET_HDR;
static const short TAPESTRY_IFF_UP = IFF_UP;
static const unsigned int TAPESTRY_TUN_F_CSUM = TUN_F_CSUM;
static const unsigned int TAPESTRY_TUN_F_TSO4 = TUN_F_TSO4;
static const unsigned int TAPESTRY_TUN_F_TSO6 = TUN_F_TSO6;
static const unsigned int TAPESTRY_TUN_F_TSO_ECN = TUN_F_TSO_ECN;

// sigset_t manipulation is macro-free in glibc, but keep signal setup in one C helper so the
// Swift side only sees a descriptor: blocks SIGINT and SIGTERM for the calling thread
// and returns a signalfd that reports them (or -1 with errno set).
static inline int tapestry_stop_signal_fd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

// The same for SIGHUP, which asks a running switch to reload its topology.
static inline int tapestry_reload_signal_fd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

// An eventfd that wakes one thread's epoll from another (the control thread and the datapath).
static inline int tapestry_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

// Sets the calling thread's nice value (Linux keeps one per thread): the control thread runs at
// a lower priority than the datapath thread, so when they compete for a core, forwarding wins.
static inline int tapestry_set_thread_nice(int nice) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}

#endif
