//! Finding connectors in a tree. STUB.
