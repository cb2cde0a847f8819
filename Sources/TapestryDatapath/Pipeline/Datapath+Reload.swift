import TapestryWire

extension Datapath {
    /// What a reload carried over.
    public struct Adoption: Sendable, Equatable {
        public var macEntries = 0
        public var connections = 0
        /// Connections whose network is gone, or with no connection tracking left.
        public var connectionsDropped = 0

        public init(macEntries: Int = 0, connections: Int = 0, connectionsDropped: Int = 0) {
            self.macEntries = macEntries
            self.connections = connections
            self.connectionsDropped = connectionsDropped
        }
    }

    /// Takes over the state of `old` (the datapath of the topology before a reload) for whatever
    /// still exists, matching networks, ports, load balancers and backends by name and address:
    /// MAC entries (when their port still carries their network), connections (when their network
    /// still exists; each checks the new rules at its next packet), learned backend MACs, drained
    /// backends, and per-port counters.
    public func adoptState(from old: Datapath, now: Timestamp) -> Adoption {
        var adoption = Adoption()
        let oldConfiguration = old.configuration
        let networkMap: [Int: NetworkID] = Dictionary(
            uniqueKeysWithValues: oldConfiguration.networks.enumerated().compactMap { index, network in
                configuration.networks.firstIndex { $0.name == network.name }.map { (index, NetworkID($0)) }
            })
        let portMap: [Int: PortID] = Dictionary(
            uniqueKeysWithValues: oldConfiguration.ports.enumerated().compactMap { index, port in
                configuration.ports.firstIndex { $0.name == port.name }.map { (index, PortID($0)) }
            })

        // Oldest first, so each port's list comes out least recently seen first, as it was.
        for entry in old.macTable.entries(now: now).sorted(by: { $0.lastSeen.nanoseconds < $1.lastSeen.nanoseconds }) {
            guard let network = networkMap[Int(entry.network)], let port = portMap[Int(entry.port)],
                configuration.ports[Int(port)].networks.contains(network)
            else { continue }
            // A tunnel's MAC stays behind its remote by address: the list may have changed.
            var remote: UInt16 = 0
            if let oldTunnel = oldConfiguration.ports[Int(entry.port)].tunnel {
                guard Int(entry.remote) < oldTunnel.remotes.count,
                    let index = configuration.ports[Int(port)].tunnel?.remotes.firstIndex(of: oldTunnel.remotes[Int(entry.remote)])
                else { continue }
                remote = UInt16(index)
            } else if configuration.ports[Int(port)].tunnel != nil {
                continue
            }
            macTable.learn(network, entry.mac, port: port, remote: remote, now: entry.lastSeen)
            adoption.macEntries += 1
        }

        if let oldTable = old.connectionTable {
            for var connection in oldTable.liveEntries(now: now.nanoseconds) {
                guard let table = connectionTable, let network = networkMap[Int(connection.key.network)] else {
                    adoption.connectionsDropped += 1
                    continue
                }
                connection.key.meta = connection.key.meta & 0x0000_FFFF_FFFF_FFFF | UInt64(network) << 48
                connection.aliasKey.meta = connection.aliasKey.meta & 0x0000_FFFF_FFFF_FFFF | UInt64(network) << 48
                if connection.backend >= 0 {
                    let oldBalancer = oldConfiguration.loadBalancers[Int(connection.balancer)]
                    let oldBackend = oldBalancer.backends[Int(connection.backend)]
                    if let balancer = configuration.loadBalancers.firstIndex(where: { $0.name == oldBalancer.name }),
                        let backend = configuration.loadBalancers[balancer].backends.firstIndex(where: {
                            $0.address == oldBackend.address && $0.port == oldBackend.port
                        })
                    {
                        connection.balancer = Int16(balancer)
                        connection.backend = Int16(backend)
                    } else {
                        // Its backend is gone: the connection cannot continue where it was going.
                        adoption.connectionsDropped += 1
                        continue
                    }
                }
                connection.needsRecheck = configuration.firewall != nil
                if table.adopt(connection) { adoption.connections += 1 } else { adoption.connectionsDropped += 1 }
            }
        }

        var backendMap: [(old: (Int, Int), new: (Int, Int))] = []
        for (oldIndex, oldBalancer) in oldConfiguration.loadBalancers.enumerated() {
            guard let balancer = configuration.loadBalancers.firstIndex(where: { $0.name == oldBalancer.name }) else { continue }
            for (oldBackendIndex, oldBackend) in oldBalancer.backends.enumerated() {
                guard let backend = configuration.loadBalancers[balancer].backends.firstIndex(where: {
                    $0.address == oldBackend.address && $0.port == oldBackend.port
                }) else { continue }
                backendMap.append((old: (oldIndex, oldBackendIndex), new: (balancer, backend)))
                if let mac = old.backendMAC(balancer: oldIndex, backend: oldBackendIndex) {
                    learnBackendMAC(network: configuration.loadBalancers[balancer].network, address: oldBackend.address, mac: mac, now: now)
                }
                if old.isDrained(balancer: oldIndex, backend: oldBackendIndex) {
                    setDrained(balancer: balancer, backend: backend, true)
                }
            }
        }

        adoptEventCounters(from: old, backendMap: backendMap)
        // Held fragments do not cross a reload (the new firewall may judge their first fragment
        // otherwise): dropped and counted on their ports before the counters come over.
        old.dropHeldFragments()
        if let fragments = firewall?.fragments, let oldFragments = old.firewall?.fragments {
            fragments.counts.pointee.released = oldFragments.counts.pointee.released
            fragments.counts.pointee.dropped = oldFragments.counts.pointee.dropped
        }
        let oldCounters = old.counters
        for (oldIndex, port) in portMap {
            adoptCounters(oldCounters.ports[oldIndex], port: port)
        }
        return adoption
    }
}
