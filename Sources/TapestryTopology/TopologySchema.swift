/// The JSON Schema (draft-07) of a topology file, for editors that check YAML as it is typed
/// (`tapestry schema`, docs/topology.md "Editor support"). `tapestry check` stays the authority:
/// a schema cannot say that a network is defined or a VLAN unused. The tests keep the two in
/// step: every key the validator allows is here with a description, and every valid example
/// and invalid fixture gets the same verdict from a real JSON Schema validator, except the
/// listed cross-reference cases.
public enum TopologySchema {
    public static let json = #"""
{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "$id": "https://tapestry.invalid/topology.schema.json",
  "title": "Tapestry topology (version 1)",
  "description": "A Tapestry switch: its networks (802.1Q VLANs), its ports, and optionally a stateful firewall and load balancers. `tapestry check FILE` is the authority: it also checks what a schema cannot (names that must be defined, values that must be unique, address families).",
  "type": "object",
  "additionalProperties": false,
  "required": [
    "name",
    "networks",
    "ports"
  ],
  "properties": {
    "version": {
      "description": "The topology format version. Only 1 exists; leaving it out means 1.",
      "type": "integer",
      "const": 1
    },
    "name": {
      "description": "The switch's name: 1-15 characters, a lowercase letter, then lowercase letters, digits or '-'. Names the control socket (/run/tapestry/NAME.sock) and the systemd instance.",
      "type": "string",
      "pattern": "^[a-z][a-z0-9-]{0,14}$"
    },
    "mac_aging": {
      "description": "Seconds a learned MAC address stays in the MAC table without being seen again (default 300).",
      "type": "integer",
      "minimum": 1,
      "maximum": 1000000
    },
    "mac_table_size": {
      "description": "The most MAC addresses learned at once, over all networks (default 8192). When full, a new MAC evicts the least recently seen entry of the port holding the most entries.",
      "type": "integer",
      "minimum": 1,
      "maximum": 16777216
    },
    "control": {
      "description": "Absolute path of the control socket that `tapestry ctl` talks to (default /run/tapestry/NAME.sock); at most 107 bytes.",
      "type": "string",
      "pattern": "^/",
      "maxLength": 107
    },
    "metrics": {
      "description": "Where to serve Prometheus metrics: IPv4:PORT or [IPv6]:PORT with an IP literal (no host names) and a port 1-65535, like 127.0.0.1:9108. Absent: no metrics endpoint.",
      "type": "string",
      "pattern": "^([0-9.]+|\\[[0-9A-Fa-f:.]+\\]):[0-9]{1,5}$"
    },
    "networks": {
      "description": "The networks: each one is an 802.1Q VLAN (and a VXLAN VNI on tunnels). Frames never cross from one network to another.",
      "type": "object",
      "minProperties": 1,
      "propertyNames": {
        "$ref": "#/definitions/objectName"
      },
      "additionalProperties": {
        "$ref": "#/definitions/network"
      }
    },
    "ports": {
      "description": "The ports (at most 1024): where frames enter and leave the switch. Each has one attachment (tap, socket, interface or vxlan) and one mode (network: an access port, or trunk: a trunk port).",
      "type": "object",
      "minProperties": 1,
      "maxProperties": 1024,
      "propertyNames": {
        "$ref": "#/definitions/objectName"
      },
      "additionalProperties": {
        "$ref": "#/definitions/port"
      }
    },
    "firewall": {
      "description": "A stateful firewall on every network: new connections are decided by the rules (first match wins), then `default`; replies and related ICMP of an allowed connection pass. Absent: every connection is allowed.",
      "allOf": [
        {
          "$ref": "#/definitions/firewall"
        }
      ]
    },
    "load_balancers": {
      "description": "Round-robin load balancers: connections to a virtual IP and port are given to backends in turn, with NAT both ways.",
      "type": "object",
      "propertyNames": {
        "$ref": "#/definitions/objectName"
      },
      "additionalProperties": {
        "$ref": "#/definitions/loadBalancer"
      }
    }
  },
  "definitions": {
    "objectName": {
      "description": "A name of a network, port or load balancer: an ASCII letter, then ASCII letters, digits, '-' or '_', at most 32 characters.",
      "type": "string",
      "pattern": "^[A-Za-z][A-Za-z0-9_-]{0,31}$"
    },
    "interfaceName": {
      "type": "string",
      "pattern": "^[^/:\\s]{1,15}$",
      "not": {
        "enum": [
          ".",
          ".."
        ]
      }
    },
    "network": {
      "description": "One network.",
      "type": "object",
      "additionalProperties": false,
      "required": [
        "vlan"
      ],
      "properties": {
        "vlan": {
          "description": "The network's 802.1Q VLAN id, 1-4094, unique across networks: the tag its frames carry on trunk ports.",
          "type": "integer",
          "minimum": 1,
          "maximum": 4094
        },
        "vni": {
          "description": "The network's VXLAN network identifier on vxlan ports, 1-16777215, unique across networks (default: the vlan id).",
          "type": "integer",
          "minimum": 1,
          "maximum": 16777215
        }
      }
    },
    "port": {
      "description": "One port: exactly one of tap, socket, interface or vxlan, and exactly one of network or trunk.",
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "tap": {
          "description": "A TAP device the switch creates, or attaches to when it exists (persistent): 1-15 bytes, no '/', ':' or whitespace. Needs root (CAP_NET_ADMIN).",
          "allOf": [
            {
              "$ref": "#/definitions/interfaceName"
            }
          ]
        },
        "interface": {
          "description": "An existing host interface (a veth end, a NIC, a TAP owned by QEMU) the switch sends and receives on through a packet socket: same name rule as tap.",
          "allOf": [
            {
              "$ref": "#/definitions/interfaceName"
            }
          ]
        },
        "socket": {
          "description": "Where the switch waits for a QEMU peer: an absolute unix socket path for -netdev stream over unix, IPv4:PORT or [IPv6]:PORT for -netdev stream over TCP, or dgram:/PATH for -netdev dgram over unix datagrams. No root needed.",
          "type": "string",
          "pattern": "^(/|dgram:/|[0-9.]+:[0-9]+$|\\[[0-9A-Fa-f:.]+\\]:[0-9]+$)",
          "maxLength": 113
        },
        "vxlan": {
          "description": "A VXLAN tunnel port: the switch's networks stretched to other hosts over UDP (a mapping of local, remotes, port and mtu).",
          "allOf": [
            {
              "$ref": "#/definitions/vxlan"
            }
          ]
        },
        "network": {
          "description": "An access port of this network: its frames are untagged and belong to the network.",
          "allOf": [
            {
              "$ref": "#/definitions/objectName"
            }
          ]
        },
        "trunk": {
          "description": "A trunk port of these networks (at least one, none twice): frames carry their network's 802.1Q tag (on vxlan ports, its VNI).",
          "type": "array",
          "minItems": 1,
          "uniqueItems": true,
          "items": {
            "$ref": "#/definitions/objectName"
          }
        },
        "native": {
          "description": "On a trunk port: the network (one of the trunk's) that untagged frames belong to and that leaves untagged. Without it, untagged frames are dropped. Not on vxlan ports.",
          "allOf": [
            {
              "$ref": "#/definitions/objectName"
            }
          ]
        },
        "netns": {
          "description": "On a tap port: the network namespace the device is moved into (run creates it when missing). On a vxlan port: the existing namespace whose network stack carries the tunnel's UDP socket.",
          "type": "string",
          "pattern": "^[^/]{1,255}$",
          "not": {
            "enum": [
              ".",
              ".."
            ]
          }
        },
        "mac_limit": {
          "description": "At most this many MACs are learned on the port; a new one beyond it evicts the port's own least recently seen entry. Use it on ports facing guests you do not trust.",
          "type": "integer",
          "minimum": 1,
          "maximum": 16777216
        },
        "peers": {
          "description": "On TCP socket ports: the addresses or CIDRs allowed to connect (at least one); any other source is closed at once, logged and counted. Absent: any source that reaches the address.",
          "type": "array",
          "minItems": 1,
          "items": {
            "type": "string",
            "pattern": "^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$"
          }
        },
        "mode": {
          "description": "On unix socket ports: the socket file's permission bits as octal text from \"0600\" to \"0777\" (quote it); the owner keeps read and write. Default \"0600\": only the switch's user.",
          "type": [
            "string",
            "integer"
          ],
          "pattern": "^0?[67][0-7]{2}$"
        },
        "group": {
          "description": "On unix socket ports: a group that exists on the machine; the socket file is given to it, so its members may attach VMs (with mode \"0660\").",
          "type": "string",
          "minLength": 1
        }
      },
      "allOf": [
        {
          "oneOf": [
            {
              "required": [
                "tap"
              ]
            },
            {
              "required": [
                "socket"
              ]
            },
            {
              "required": [
                "interface"
              ]
            },
            {
              "required": [
                "vxlan"
              ]
            }
          ]
        },
        {
          "oneOf": [
            {
              "required": [
                "network"
              ]
            },
            {
              "required": [
                "trunk"
              ]
            }
          ]
        }
      ],
      "dependencies": {
        "native": {
          "required": [
            "trunk"
          ],
          "not": {
            "required": [
              "vxlan"
            ]
          }
        },
        "netns": {
          "anyOf": [
            {
              "required": [
                "tap"
              ]
            },
            {
              "required": [
                "vxlan"
              ]
            }
          ]
        },
        "peers": {
          "required": [
            "socket"
          ]
        },
        "mode": {
          "required": [
            "socket"
          ]
        },
        "group": {
          "required": [
            "socket"
          ]
        }
      }
    },
    "ipv4": {
      "type": "string",
      "pattern": "^[0-9]{1,3}(\\.[0-9]{1,3}){3}$"
    },
    "vxlan": {
      "description": "A VXLAN tunnel (RFC 7348) over UDP to other switches or hosts (Linux vxlan devices, Open vSwitch): one VNI per network, floods replicated to every remote, packets from other sources dropped.",
      "type": "object",
      "additionalProperties": false,
      "required": [
        "local",
        "remotes"
      ],
      "properties": {
        "local": {
          "description": "The unicast IPv4 address the tunnel's UDP socket binds (no root needed).",
          "allOf": [
            {
              "$ref": "#/definitions/ipv4"
            }
          ]
        },
        "remotes": {
          "description": "The tunnel endpoints: 1 to 256 unicast IPv4 addresses, none twice and none equal to local. Packets from any other source are dropped (counted as tunnel).",
          "type": "array",
          "minItems": 1,
          "maxItems": 256,
          "uniqueItems": true,
          "items": {
            "$ref": "#/definitions/ipv4"
          }
        },
        "port": {
          "description": "The UDP port the socket listens on and sends to (default 4789).",
          "type": "integer",
          "minimum": 1,
          "maximum": 65535
        },
        "mtu": {
          "description": "The underlay MTU: the largest outer IPv4 packet sent (default 1500; inner IP packets up to mtu - 50 bytes pass).",
          "type": "integer",
          "minimum": 118,
          "maximum": 65535
        }
      }
    },
    "action": {
      "type": "string",
      "enum": [
        "allow",
        "drop"
      ]
    },
    "timeout": {
      "type": "integer",
      "minimum": 1,
      "maximum": 2147483647
    },
    "firewall": {
      "type": "object",
      "additionalProperties": false,
      "required": [
        "default"
      ],
      "properties": {
        "default": {
          "description": "What happens to new connections no rule matches: allow or drop.",
          "allOf": [
            {
              "$ref": "#/definitions/action"
            }
          ]
        },
        "max_connections": {
          "description": "The most connections tracked at once (default 262144); a new connection beyond it is dropped and counted.",
          "type": "integer",
          "minimum": 1,
          "maximum": 100000000
        },
        "timeouts": {
          "description": "Seconds a tracked connection lives without a packet, per state (Linux nf_conntrack's defaults); names not set keep their default.",
          "type": "object",
          "additionalProperties": false,
          "properties": {
            "tcp_syn_sent": {
              "description": "A SYN seen, no answer yet (default 120).",
              "allOf": [
                {
                  "$ref": "#/definitions/timeout"
                }
              ]
            },
            "tcp_syn_recv": {
              "description": "SYN and SYN-ACK seen (default 60).",
              "allOf": [
                {
                  "$ref": "#/definitions/timeout"
                }
              ]
            },
            "tcp_established": {
              "description": "An established connection (default 432000, 5 days).",
              "allOf": [
                {
                  "$ref": "#/definitions/timeout"
                }
              ]
            },
            "tcp_fin_wait": {
              "description": "A FIN seen from one side (default 120).",
              "allOf": [
                {
                  "$ref": "#/definitions/timeout"
                }
              ]
            },
            "tcp_close_wait": {
              "description": "A FIN acknowledged, the other side still open (default 60).",
              "allOf": [
                {
                  "$ref": "#/definitions/timeout"
                }
              ]
            },
            "tcp_last_ack": {
              "description": "FINs from both sides, the last ACK awaited (default 30).",
              "allOf": [
                {
                  "$ref": "#/definitions/timeout"
                }
              ]
            },
            "tcp_time_wait": {
              "description": "Both sides closed (default 120).",
              "allOf": [
                {
                  "$ref": "#/definitions/timeout"
                }
              ]
            },
            "tcp_close": {
              "description": "After a RST (default 10).",
              "allOf": [
                {
                  "$ref": "#/definitions/timeout"
                }
              ]
            },
            "udp": {
              "description": "A UDP flow seen one way (default 30).",
              "allOf": [
                {
                  "$ref": "#/definitions/timeout"
                }
              ]
            },
            "udp_stream": {
              "description": "A UDP flow seen both ways (default 120).",
              "allOf": [
                {
                  "$ref": "#/definitions/timeout"
                }
              ]
            },
            "icmp": {
              "description": "An ICMP echo exchange (default 30).",
              "allOf": [
                {
                  "$ref": "#/definitions/timeout"
                }
              ]
            }
          }
        },
        "rules": {
          "description": "The rules, in order: the first whose fields all match a new connection decides it. An absent field matches anything.",
          "type": "array",
          "items": {
            "$ref": "#/definitions/rule"
          }
        },
        "log_default": {
          "description": "Log the new connections `default` decides (default false).",
          "type": "boolean"
        }
      }
    },
    "addresses": {
      "description": "An IPv4 or IPv6 address or CIDR, or a list of 1 to 256 of them (any may match). Host bits past the prefix are refused.",
      "oneOf": [
        {
          "$ref": "#/definitions/prefix"
        },
        {
          "type": "array",
          "minItems": 1,
          "maxItems": 256,
          "items": {
            "$ref": "#/definitions/prefix"
          }
        }
      ]
    },
    "prefix": {
      "type": "string",
      "pattern": "^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$"
    },
    "portOrRange": {
      "oneOf": [
        {
          "type": "integer",
          "minimum": 0,
          "maximum": 65535
        },
        {
          "type": "string",
          "pattern": "^[0-9]{1,5}(-[0-9]{1,5})?$"
        }
      ]
    },
    "ports": {
      "description": "A port 0-65535, an inclusive range as text (\"1024-65535\"), or a list of 1 to 256 of them. Only with proto tcp or udp.",
      "oneOf": [
        {
          "$ref": "#/definitions/portOrRange"
        },
        {
          "type": "array",
          "minItems": 1,
          "maxItems": 256,
          "items": {
            "$ref": "#/definitions/portOrRange"
          }
        }
      ]
    },
    "rule": {
      "type": "object",
      "additionalProperties": false,
      "required": [
        "action"
      ],
      "properties": {
        "action": {
          "description": "allow or drop the connections the rule matches.",
          "allOf": [
            {
              "$ref": "#/definitions/action"
            }
          ]
        },
        "proto": {
          "description": "The protocol: tcp, udp, icmp (IPv4), icmpv6 or any (default any).",
          "type": "string",
          "enum": [
            "tcp",
            "udp",
            "icmp",
            "icmpv6",
            "any"
          ]
        },
        "src": {
          "description": "The connection's source address or network: an IPv4 or IPv6 address or CIDR, or a list of 1 to 256 of them (any may match). Host bits past the prefix are refused.",
          "allOf": [
            {
              "$ref": "#/definitions/addresses"
            }
          ]
        },
        "dst": {
          "description": "The connection's destination address or network: an IPv4 or IPv6 address or CIDR, or a list of 1 to 256 of them (any may match). Host bits past the prefix are refused.",
          "allOf": [
            {
              "$ref": "#/definitions/addresses"
            }
          ]
        },
        "sport": {
          "description": "The connection's source port: a port 0-65535, an inclusive range as text (\"1024-65535\"), or a list of 1 to 256 of them. Only with proto tcp or udp.",
          "allOf": [
            {
              "$ref": "#/definitions/ports"
            }
          ]
        },
        "dport": {
          "description": "The connection's destination port: a port 0-65535, an inclusive range as text (\"1024-65535\"), or a list of 1 to 256 of them. Only with proto tcp or udp.",
          "allOf": [
            {
              "$ref": "#/definitions/ports"
            }
          ]
        },
        "network": {
          "description": "Only connections on this network.",
          "allOf": [
            {
              "$ref": "#/definitions/objectName"
            }
          ]
        },
        "log": {
          "description": "Log the new connections the rule decides (default false).",
          "type": "boolean"
        }
      },
      "dependencies": {
        "sport": {
          "properties": {
            "proto": {
              "enum": [
                "tcp",
                "udp"
              ]
            }
          },
          "required": [
            "proto"
          ]
        },
        "dport": {
          "properties": {
            "proto": {
              "enum": [
                "tcp",
                "udp"
              ]
            }
          },
          "required": [
            "proto"
          ]
        }
      }
    },
    "backendAddress": {
      "type": "string",
      "pattern": "^([0-9.]+|\\[[0-9A-Fa-f:.]+\\]):[0-9]{1,5}$"
    },
    "loadBalancer": {
      "type": "object",
      "additionalProperties": false,
      "required": [
        "network",
        "vip",
        "port",
        "backends"
      ],
      "properties": {
        "network": {
          "description": "The network the VIP and the backends are on.",
          "allOf": [
            {
              "$ref": "#/definitions/objectName"
            }
          ]
        },
        "vip": {
          "description": "The virtual IP address clients connect to (IPv4 or IPv6), which the switch answers ARP and neighbor solicitations for; with a prefix (10.0.10.100/24), backends must lie inside it.",
          "type": "string",
          "pattern": "^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$"
        },
        "port": {
          "description": "The VIP's port, 1-65535.",
          "type": "integer",
          "minimum": 1,
          "maximum": 65535
        },
        "proto": {
          "description": "tcp or udp (default tcp).",
          "type": "string",
          "enum": [
            "tcp",
            "udp"
          ]
        },
        "mac": {
          "description": "The MAC address the VIP answers with: unicast and non-zero, ':' or '-' separated (default: one derived from the switch and balancer names).",
          "type": "string",
          "pattern": "^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$"
        },
        "backends": {
          "description": "The servers, taken in turn (weighted): \"IPv4:PORT\" or \"[IPv6]:PORT\" of the VIP's family, or { address, weight }; none twice, none the VIP.",
          "type": "array",
          "minItems": 1,
          "items": {
            "oneOf": [
              {
                "$ref": "#/definitions/backendAddress"
              },
              {
                "type": "object",
                "additionalProperties": false,
                "required": [
                  "address"
                ],
                "properties": {
                  "address": {
                    "description": "IPv4:PORT or [IPv6]:PORT.",
                    "allOf": [
                      {
                        "$ref": "#/definitions/backendAddress"
                      }
                    ]
                  },
                  "weight": {
                    "description": "How many connections the backend gets in a round, 1-1000 (default 1).",
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 1000
                  }
                }
              }
            ]
          }
        },
        "affinity": {
          "description": "Seconds, 1-86400: a client's new connections reuse its last backend for this long after its last connection.",
          "type": "integer",
          "minimum": 1,
          "maximum": 86400
        },
        "health": {
          "description": "Active health checks: a backend that fails `fall` probes in a row gets no new connections until it passes `rise`.",
          "type": "object",
          "additionalProperties": false,
          "properties": {
            "probe": {
              "description": "tcp (a SYN to the backend's port; not for udp balancers), icmp (echo) or arp (default tcp; icmp for udp).",
              "type": "string",
              "enum": [
                "tcp",
                "icmp",
                "arp"
              ]
            },
            "interval": {
              "description": "Seconds between probes of a backend, 1-3600 (default 2).",
              "type": "integer",
              "minimum": 1,
              "maximum": 3600
            },
            "timeout": {
              "description": "Seconds to wait for an answer, 1-3600 and at most interval (default 1).",
              "type": "integer",
              "minimum": 1,
              "maximum": 3600
            },
            "rise": {
              "description": "Passed probes in a row that bring a backend up, 1-100 (default 2).",
              "type": "integer",
              "minimum": 1,
              "maximum": 100
            },
            "fall": {
              "description": "Failed probes in a row that take a backend down, 1-100 (default 2).",
              "type": "integer",
              "minimum": 1,
              "maximum": 100
            }
          }
        }
      }
    }
  }
}
"""#
}
