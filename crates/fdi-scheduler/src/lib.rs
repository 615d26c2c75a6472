//! Manual runs, terminate, crash recovery (and, later, dispatch plans).
