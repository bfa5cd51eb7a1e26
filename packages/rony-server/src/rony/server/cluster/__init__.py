"""rony.server.cluster: gossip membership (SWIM + Lifeguard over gRPC) and the cluster CA."""
