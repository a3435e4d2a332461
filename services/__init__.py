"""The three gRPC workloads (order, inventory, payment) and the runtime they share."""
