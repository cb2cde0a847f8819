#define _GNU_SOURCE
#include "tapestry_batch_io.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

int tapestry_packet_open(const char *name, int *ifindex, int *ignores_outgoing, const char **step) {
    *step = "find the interface";
    unsigned index = if_nametoindex(name);
    if (index == 0) return -errno;
    *ifindex = (int)index;
    // Protocol 0 until bound, so no frame of another interface is queued in between.
    *step = "open a packet socket";
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    *step = "enable PACKET_VNET_HDR";
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0) goto fail;
    *step = "enable PACKET_AUXDATA";
    if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) != 0) goto fail;
    *ignores_outgoing = setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) == 0;
    int buffer = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
    struct sockaddr_ll address;
    memset(&address, 0, sizeof address);
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = (int)index;
    *step = "bind to the interface";
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) goto fail;
    struct packet_mreq membership;
    memset(&membership, 0, sizeof membership);
    membership.mr_ifindex = (int)index;
    membership.mr_type = PACKET_MR_PROMISC;
    *step = "make the interface promiscuous";
    if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &membership, sizeof membership) != 0) goto fail;
    return fd;
fail:;
    int code = errno;
    close(fd);
    return -code;
}

// One mmsghdr for `message`: its header and frame as two iovecs, and where an address goes.
static void fill_header(struct mmsghdr *header, struct iovec iov[2], struct tapestry_message *message,
                        int receiving, void *name, socklen_t name_length) {
    iov[0].iov_base = message->header;
    iov[0].iov_len = message->header_length;
    iov[1].iov_base = message->frame;
    iov[1].iov_len = receiving ? message->capacity : message->length;
    memset(header, 0, sizeof *header);
    header->msg_hdr.msg_iov = iov;
    header->msg_hdr.msg_iovlen = 2;
    header->msg_hdr.msg_name = name;
    header->msg_hdr.msg_namelen = name_length;
}

int tapestry_packet_recv(int fd, struct tapestry_message *messages, int count) {
    if (count > TAPESTRY_BATCH_MAX) count = TAPESTRY_BATCH_MAX;
    struct mmsghdr headers[TAPESTRY_BATCH_MAX];
    struct iovec iov[TAPESTRY_BATCH_MAX][2];
    struct sockaddr_ll from[TAPESTRY_BATCH_MAX];
    union {
        char bytes[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
        struct cmsghdr align;
    } control[TAPESTRY_BATCH_MAX];
    for (int i = 0; i < count; i++) {
        fill_header(&headers[i], iov[i], &messages[i], 1, &from[i], sizeof from[i]);
        headers[i].msg_hdr.msg_control = control[i].bytes;
        headers[i].msg_hdr.msg_controllen = sizeof control[i].bytes;
    }
    int received = recvmmsg(fd, headers, (unsigned)count, MSG_DONTWAIT, NULL);
    if (received < 0) return errno == EAGAIN ? 0 : -errno;
    for (int i = 0; i < received; i++) {
        struct tapestry_message *message = &messages[i];
        unsigned total = headers[i].msg_len;
        message->length = total > message->header_length ? total - message->header_length : 0;
        if (message->length > message->capacity) message->length = message->capacity;
        message->flags = 0;
        message->vlan_tci = 0;
        message->vlan_tpid = 0;
        if (headers[i].msg_hdr.msg_flags & MSG_TRUNC) message->flags |= TAPESTRY_RX_TRUNCATED;
        if (from[i].sll_pkttype == PACKET_OUTGOING) message->flags |= TAPESTRY_RX_OUTGOING;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&headers[i].msg_hdr); c; c = CMSG_NXTHDR(&headers[i].msg_hdr, c)) {
            if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
            struct tpacket_auxdata aux;
            memcpy(&aux, CMSG_DATA(c), sizeof aux);
            if (aux.tp_status & TP_STATUS_VLAN_VALID) {
                message->vlan_tci = aux.tp_vlan_tci;
                message->vlan_tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) ? aux.tp_vlan_tpid : ETH_P_8021Q;
            }
        }
    }
    return received;
}

static int send_batch(int fd, struct tapestry_message *messages, int count, struct sockaddr_un *to) {
    struct mmsghdr headers[TAPESTRY_BATCH_MAX];
    struct iovec iov[TAPESTRY_BATCH_MAX][2];
    int sent = 0;
    while (sent < count) {
        int chunk = count - sent < TAPESTRY_BATCH_MAX ? count - sent : TAPESTRY_BATCH_MAX;
        for (int i = 0; i < chunk; i++) {
            fill_header(&headers[i], iov[i], &messages[sent + i], 0, to, to ? sizeof *to : 0);
        }
        int done = sendmmsg(fd, headers, (unsigned)chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (done < 0) {
            if (errno == EINTR) continue;
            return sent > 0 ? sent : -errno;
        }
        sent += done;
        if (done < chunk) break;
    }
    return sent;
}

int tapestry_batch_send(int fd, struct tapestry_message *messages, int count) {
    return send_batch(fd, messages, count, NULL);
}

int tapestry_dgram_recv(int fd, struct tapestry_message *messages, int count, char *peer, int peer_capacity, int *peer_named) {
    if (count > TAPESTRY_BATCH_MAX) count = TAPESTRY_BATCH_MAX;
    struct mmsghdr headers[TAPESTRY_BATCH_MAX];
    struct iovec iov[TAPESTRY_BATCH_MAX][2];
    struct sockaddr_un from[TAPESTRY_BATCH_MAX];
    for (int i = 0; i < count; i++) {
        fill_header(&headers[i], iov[i], &messages[i], 1, &from[i], sizeof from[i]);
    }
    *peer_named = 0;
    int received = recvmmsg(fd, headers, (unsigned)count, MSG_DONTWAIT, NULL);
    if (received < 0) return errno == EAGAIN ? 0 : -errno;
    for (int i = 0; i < received; i++) {
        struct tapestry_message *message = &messages[i];
        message->length = headers[i].msg_len > message->header_length ? headers[i].msg_len - message->header_length : 0;
        message->flags = (headers[i].msg_hdr.msg_flags & MSG_TRUNC) ? TAPESTRY_RX_TRUNCATED : 0;
        message->vlan_tci = 0;
        message->vlan_tpid = 0;
        socklen_t length = headers[i].msg_hdr.msg_namelen;
        size_t offset = offsetof(struct sockaddr_un, sun_path);
        if (length > offset && from[i].sun_path[0] != 0) {
            size_t path = length - offset;
            if (path >= (size_t)peer_capacity) path = (size_t)peer_capacity - 1;
            memcpy(peer, from[i].sun_path, path);
            peer[path] = 0;
            *peer_named = 1;
        }
    }
    return received;
}

int tapestry_dgram_send(int fd, struct tapestry_message *messages, int count, const char *peer) {
    if (peer == NULL) return send_batch(fd, messages, count, NULL);
    struct sockaddr_un to;
    memset(&to, 0, sizeof to);
    to.sun_family = AF_UNIX;
    strncpy(to.sun_path, peer, sizeof to.sun_path - 1);
    return send_batch(fd, messages, count, &to);
}

int tapestry_accept(int fd, void *address, unsigned int *length) {
    socklen_t size = *length;
    int client = accept4(fd, (struct sockaddr *)address, &size, SOCK_NONBLOCK | SOCK_CLOEXEC);
    *length = size;
    return client;
}

int tapestry_dgram_connect(int fd, const char *peer) {
    struct sockaddr_un to;
    memset(&to, 0, sizeof to);
    if (peer == NULL) {
        to.sun_family = AF_UNSPEC;
        return connect(fd, (struct sockaddr *)&to, sizeof(sa_family_t)) == 0 ? 0 : -errno;
    }
    to.sun_family = AF_UNIX;
    strncpy(to.sun_path, peer, sizeof to.sun_path - 1);
    return connect(fd, (struct sockaddr *)&to, sizeof to) == 0 ? 0 : -errno;
}

// setns changes the calling thread's namespace only: step in, make the descriptor (it stays in
// the namespace it was made in), step back. Returns a descriptor of the thread's own namespace
// to give to leave_netns, or -errno with `step` naming what failed (the thread did not move).
static int enter_netns(const char *netns, const char **step) {
    *step = "open the current network namespace";
    int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original < 0) return -errno;
    *step = "open the network namespace";
    int target = open(netns, O_RDONLY | O_CLOEXEC);
    if (target < 0) {
        int code = errno;
        close(original);
        return -code;
    }
    *step = "enter the network namespace";
    int entered = setns(target, CLONE_NEWNET);
    int code = errno;
    close(target);
    if (entered != 0) {
        close(original);
        return -code;
    }
    return original;
}

// Back to the switch's own namespace; failing that, this thread would open later devices and
// sockets in the wrong one.
static void leave_netns(int original) {
    if (setns(original, CLONE_NEWNET) != 0) abort();
    close(original);
}

int tapestry_udp_open(const char *netns, uint32_t local, uint16_t port, const char **step) {
    int original = -1;
    if (netns != NULL) {
        original = enter_netns(netns, step);
        if (original < 0) return original;
    }
    *step = "open a UDP socket";
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int code = errno;
    if (fd >= 0) {
        int size = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        // DF on every outer packet, as the contract asks: the underlay never fragments a tunnel
        // packet (frames that do not fit the MTU are cut or dropped before they are sent).
        int discovery = IP_PMTUDISC_PROBE;
        setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &discovery, sizeof discovery);
        struct sockaddr_in address;
        memset(&address, 0, sizeof address);
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(local);
        *step = "bind the UDP socket";
        if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) {
            code = errno;
            close(fd);
            fd = -1;
        }
    }
    if (original >= 0) leave_netns(original);
    return fd >= 0 ? fd : -code;
}

int tapestry_tap_open_in(const char *netns, const char *name, short flags, const char **step) {
    int original = enter_netns(netns, step);
    if (original < 0) return original;
    *step = "open /dev/net/tun";
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    int code = errno;
    if (fd >= 0) {
        struct ifreq request;
        memset(&request, 0, sizeof request);
        strncpy(request.ifr_name, name, IFNAMSIZ - 1);
        request.ifr_flags = flags;
        *step = "attach the tap device (TUNSETIFF)";
        if (ioctl(fd, TUNSETIFF, &request) != 0) {
            code = errno;
            close(fd);
            fd = -1;
        }
    }
    leave_netns(original);
    return fd >= 0 ? fd : -code;
}

int tapestry_udp_recv(int fd, struct tapestry_message *messages, int count, uint32_t *sources) {
    if (count > TAPESTRY_BATCH_MAX) count = TAPESTRY_BATCH_MAX;
    struct mmsghdr headers[TAPESTRY_BATCH_MAX];
    struct iovec iov[TAPESTRY_BATCH_MAX][2];
    struct sockaddr_in from[TAPESTRY_BATCH_MAX];
    for (int i = 0; i < count; i++) {
        fill_header(&headers[i], iov[i], &messages[i], 1, &from[i], sizeof from[i]);
    }
    int received = recvmmsg(fd, headers, (unsigned)count, MSG_DONTWAIT, NULL);
    if (received < 0) return errno == EAGAIN ? 0 : -errno;
    for (int i = 0; i < received; i++) {
        struct tapestry_message *message = &messages[i];
        message->length = headers[i].msg_len > message->header_length ? headers[i].msg_len - message->header_length : 0;
        message->flags = (headers[i].msg_hdr.msg_flags & MSG_TRUNC) ? TAPESTRY_RX_TRUNCATED : 0;
        message->vlan_tci = 0;
        message->vlan_tpid = 0;
        int named = headers[i].msg_hdr.msg_namelen >= sizeof(struct sockaddr_in) && from[i].sin_family == AF_INET;
        sources[i] = named ? ntohl(from[i].sin_addr.s_addr) : 0;
    }
    return received;
}

int tapestry_udp_send_segments(int fd, struct tapestry_message *messages, int count, const uint32_t *destinations,
                               uint16_t port, const uint16_t *segment_sizes) {
    struct mmsghdr headers[TAPESTRY_BATCH_MAX];
    struct iovec iov[TAPESTRY_BATCH_MAX][2];
    struct sockaddr_in to[TAPESTRY_BATCH_MAX];
    union {
        char bytes[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control[TAPESTRY_BATCH_MAX];
    int sent = 0;
    while (sent < count) {
        int chunk = count - sent < TAPESTRY_BATCH_MAX ? count - sent : TAPESTRY_BATCH_MAX;
        for (int i = 0; i < chunk; i++) {
            memset(&to[i], 0, sizeof to[i]);
            to[i].sin_family = AF_INET;
            to[i].sin_port = htons(port);
            to[i].sin_addr.s_addr = htonl(destinations[sent + i]);
            fill_header(&headers[i], iov[i], &messages[sent + i], 0, &to[i], sizeof to[i]);
            uint16_t size = segment_sizes[sent + i];
            if (size != 0) {
                // UDP_SEGMENT: the kernel cuts the buffer into datagrams of `size` bytes (the
                // last may be shorter), one GSO packet down the stack.
                memset(&control[i], 0, sizeof control[i]);
                headers[i].msg_hdr.msg_control = control[i].bytes;
                headers[i].msg_hdr.msg_controllen = sizeof control[i].bytes;
                struct cmsghdr *cmsg = CMSG_FIRSTHDR(&headers[i].msg_hdr);
                cmsg->cmsg_level = SOL_UDP;
                cmsg->cmsg_type = UDP_SEGMENT;
                cmsg->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                memcpy(CMSG_DATA(cmsg), &size, sizeof size);
            }
        }
        int done = sendmmsg(fd, headers, (unsigned)chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (done < 0) {
            if (errno == EINTR) continue;
            return sent > 0 ? sent : -errno;
        }
        sent += done;
        if (done < chunk) break;
    }
    return sent;
}
