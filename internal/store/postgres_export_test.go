package store

// MigrationLockKey is the advisory lock migrations take, for the tests of
// package store_test.
const MigrationLockKey = migrationLockKey
