package pgcluster

// FindBinDirIn is FindBinDir with the usual install paths replaced by
// candidates, so tests can control every source.
var FindBinDirIn = findBinDir
