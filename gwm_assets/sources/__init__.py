"""Sources: one module per provider. Each fetches into its raw table in source-native columns."""
