#ifndef TAPESTRY_BATCH_IO_H
#define TAPESTRY_BATCH_IO_H

// Batched socket I/O for the live switch's packet-socket (`interface:`) and unix-datagram
// (`socket: dgram:`) ports: one recvmmsg/sendmmsg per batch instead of one syscall per frame,
// with the control-message and sockaddr plumbing (PACKET_AUXDATA, sockaddr_ll, sockaddr_un)
// kept on the C side. Nothing here allocates.

#include <stdint.h>

// Received: the frame was longer than `capacity` (its tail is lost).
#define TAPESTRY_RX_TRUNCATED 1u
// Received on a packet socket: the host sent this frame itself (not for the switch).
#define TAPESTRY_RX_OUTGOING 2u

#define TAPESTRY_BATCH_MAX 64

// One message of a batch. For receiving, `header`/`header_length` (may be 0) and `frame`/`capacity`
// say where the bytes go; `length`, `flags` and the VLAN fields are filled in. For sending,
// `frame`/`length` (and the header) are the bytes to send.
struct tapestry_message {
    void *header;
    uint32_t header_length;
    void *frame;
    uint32_t capacity;
    uint32_t length;
    uint32_t flags;
    // A VLAN tag the kernel took off the frame before the packet socket saw it (tpid 0: none).
    uint16_t vlan_tci;
    uint16_t vlan_tpid;
};

// Opens an AF_PACKET socket on interface `name`: every protocol, the 10-byte virtio-net header on
// each frame (PACKET_VNET_HDR: checksum and TSO offloads), stripped VLAN tags reported
// (PACKET_AUXDATA), promiscuous, non-blocking, bound to the interface. `*ignores_outgoing` tells
// whether the kernel drops the host's own sends (PACKET_IGNORE_OUTGOING); otherwise receive marks
// them TAPESTRY_RX_OUTGOING. Returns the descriptor, or -errno; `*step` names what failed.
int tapestry_packet_open(const char *name, int *ifindex, int *ignores_outgoing, const char **step);

// Receives up to `count` (at most TAPESTRY_BATCH_MAX) frames. Returns how many, 0 when none is
// waiting, or -errno.
int tapestry_packet_recv(int fd, struct tapestry_message *messages, int count);

// Sends `count` frames. Returns how many were sent; when the first fails, -errno.
int tapestry_batch_send(int fd, struct tapestry_message *messages, int count);

// Receives up to `count` datagrams from a unix datagram socket. The path of the last sender
// that had one is copied into `peer` (`peer_capacity` bytes, NUL-terminated) and `*peer_named`
// set to 1; an unnamed sender leaves `peer` alone. Returns how many, 0, or -errno.
int tapestry_dgram_recv(int fd, struct tapestry_message *messages, int count, char *peer, int peer_capacity, int *peer_named);

// Sends `count` datagrams to the unix socket at `peer` (NULL: the connected peer). Returns how
// many; when the first fails, -errno.
int tapestry_dgram_send(int fd, struct tapestry_message *messages, int count, const char *peer);

// Connects a unix datagram socket to the socket at `peer` (NULL: dissolves the association), so
// sends need no address and poll reports it unwritable while the peer's queue is full.
// Returns 0 or -errno.
int tapestry_dgram_connect(int fd, const char *peer);

// accept4 (a GNU extension Glibc's module does not show): a non-blocking, close-on-exec accept.
// `address` is a struct sockaddr_storage of `*length` bytes.
int tapestry_accept(int fd, void *address, unsigned int *length);

// Opens a non-blocking UDP socket bound to `local`:`port` (host byte order), with DF on every
// packet and 4 MiB buffers; in the network namespace at path `netns` (as /run/netns/NAME) when
// not NULL (the caller needs CAP_SYS_ADMIN for that). Returns the descriptor, or -errno; `*step`
// names what failed.
int tapestry_udp_open(const char *netns, uint32_t local, uint16_t port, const char **step);

// Opens /dev/net/tun inside the named network namespace at path `netns` and attaches TAP device
// `name` there (TUNSETIFF with `flags`): how a persistent device already moved into a namespace
// is attached again after a restart. Returns the descriptor, or -errno with `step` naming what
// failed. The calling thread is back in its own namespace either way.
int tapestry_tap_open_in(const char *netns, const char *name, short flags, const char **step);

// Receives up to `count` datagrams; `sources[i]` is the IPv4 sender of message i (host order,
// 0 when not IPv4). Returns how many, 0 when none is waiting, or -errno.
int tapestry_udp_recv(int fd, struct tapestry_message *messages, int count, uint32_t *sources);

// Sends message i to `destinations[i]`:`port` (host order), header then frame; message i with
// `segment_sizes[i]` not 0 is a UDP GSO send: its
// bytes are datagrams of that many bytes back to back (the last may be shorter), cut apart by the
// kernel (UDP_SEGMENT, Linux 4.18 and later). Returns how many were sent; when the first fails, -errno.
int tapestry_udp_send_segments(int fd, struct tapestry_message *messages, int count, const uint32_t *destinations,
                               uint16_t port, const uint16_t *segment_sizes);

#endif
