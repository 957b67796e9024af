-- The claim's per-organisation cap counts only the running documents of one organisation; without
-- this index it scanned every document of the organisation for each claim (10,000 queued
-- documents made each claim cost milliseconds).
CREATE INDEX documents_running ON documents(org_id, status, staged, lease_until);
