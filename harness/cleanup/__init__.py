"""Everything that removes what runs created: the write-ahead journal, the ledger (per-test
cleanup), crash recovery, the residue check, the sweeper and the run's lease.
"""
