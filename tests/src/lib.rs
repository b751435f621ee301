//! Host-side whole-boot-flow integration tests live in tests/tests/.
