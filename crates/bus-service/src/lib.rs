//! The service runtime of the bus (work in progress).
