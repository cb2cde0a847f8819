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

#endif
