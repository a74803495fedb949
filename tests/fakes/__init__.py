"""Stand-ins for libraries this machine cannot run; each says what it is kept for."""
