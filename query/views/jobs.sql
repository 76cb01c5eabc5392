-- One row per job. A plain driver (`python script.py`) is a DRIVER job; a job started
-- through the job API is a SUBMISSION job, known from its driver's events (the
-- submission id is in the driver's metadata), from submission-job events when Ray
-- exports them, and from the head collector's snapshots of /api/jobs/, which hold its
-- status, message and exit code (Ray 2.60 exports no submission-job events by default).
CREATE OR REPLACE VIEW jobs AS
WITH definition AS (
    SELECT * FROM driver_job_definition_events
    QUALIFY row_number() OVER (
        PARTITION BY namespace, cluster, session, job_id ORDER BY event_time DESC) = 1
),
history AS (
    SELECT namespace, cluster, session, job_id,
           arg_max(state, (state_time, seq)) FILTER (state IS NOT NULL) AS driver_state,
           min(state_time) FILTER (state = 'CREATED') AS start_time,
           max(state_time) FILTER (state = 'FINISHED') AS end_time
    FROM driver_job_lifecycle_events
    GROUP BY ALL
),
driver_jobs AS (
    SELECT namespace, cluster, session, job_id,
           d.metadata['job_submission_id'] AS submission_id,
           d.entrypoint, d.driver_pid, d.driver_node_id, d.metadata,
           d.serialized_runtime_env, h.driver_state, h.start_time, h.end_time
    FROM definition d
    FULL OUTER JOIN history h USING (namespace, cluster, session, job_id)
),
submission_definition AS (
    SELECT * FROM submission_job_definition_events
    QUALIFY row_number() OVER (
        PARTITION BY namespace, cluster, session, submission_id ORDER BY event_time DESC) = 1
),
submission_events AS (
    SELECT namespace, cluster, session, submission_id,
           arg_max(state, (state_time, seq)) FILTER (state IS NOT NULL) AS status,
           arg_max(state_message, (state_time, seq)) FILTER (state IS NOT NULL) AS message,
           arg_max(error_type, (state_time, seq)) FILTER (error_type <> '') AS error_type,
           arg_max(driver_exit_code, state_time) FILTER (driver_exit_code IS NOT NULL)
               AS driver_exit_code,
           arg_max(driver_agent_http_address, state_time)
               FILTER (driver_agent_http_address <> '') AS driver_agent_http_address,
           min(state_time) AS start_time,
           max(state_time) FILTER (state IN ('SUCCEEDED', 'FAILED', 'STOPPED')) AS end_time
    FROM submission_job_lifecycle_events
    GROUP BY ALL
),
snapshot AS (
    SELECT * FROM submission_job_snapshots
    WHERE submission_id IS NOT NULL
    QUALIFY row_number() OVER (
        PARTITION BY namespace, cluster, session, submission_id ORDER BY snapshot_time DESC) = 1
),
submissions AS (
    SELECT namespace, cluster, session, submission_id FROM driver_jobs
    WHERE submission_id IS NOT NULL
    UNION SELECT namespace, cluster, session, submission_id FROM submission_definition
    UNION SELECT namespace, cluster, session, submission_id FROM submission_events
    UNION SELECT namespace, cluster, session, submission_id FROM snapshot
),
submission_jobs AS (
    SELECT k.namespace, k.cluster, k.session, k.submission_id,
           coalesce(j.job_id, snap.job_id) AS job_id,
           'SUBMISSION' AS type,
           coalesce(e.status, snap.status) AS status,
           j.driver_state,
           coalesce(sd.entrypoint, snap.entrypoint, j.entrypoint) AS entrypoint,
           coalesce(e.message, snap.message) AS message,
           coalesce(e.error_type, snap.error_type) AS error_type,
           coalesce(e.start_time, snap.start_time, j.start_time) AS start_time,
           coalesce(e.end_time, snap.end_time, j.end_time) AS end_time,
           j.start_time AS driver_start_time,
           j.end_time AS driver_end_time,
           coalesce(j.driver_pid, snap.driver_pid) AS driver_pid,
           coalesce(j.driver_node_id, snap.driver_node_id) AS driver_node_id,
           coalesce(e.driver_exit_code, snap.driver_exit_code) AS driver_exit_code,
           coalesce(e.driver_agent_http_address, snap.driver_agent_http_address)
               AS driver_agent_http_address,
           coalesce(sd.metadata, snap.metadata, j.metadata) AS metadata,
           coalesce(sd.serialized_runtime_env, snap.runtime_env, j.serialized_runtime_env)
               AS serialized_runtime_env
    FROM submissions k
    LEFT JOIN driver_jobs j
        ON j.namespace = k.namespace AND j.cluster = k.cluster AND j.session = k.session
       AND j.submission_id = k.submission_id
    LEFT JOIN submission_definition sd
        ON sd.namespace = k.namespace AND sd.cluster = k.cluster AND sd.session = k.session
       AND sd.submission_id = k.submission_id
    LEFT JOIN submission_events e
        ON e.namespace = k.namespace AND e.cluster = k.cluster AND e.session = k.session
       AND e.submission_id = k.submission_id
    LEFT JOIN snapshot snap
        ON snap.namespace = k.namespace AND snap.cluster = k.cluster
       AND snap.session = k.session AND snap.submission_id = k.submission_id
),
plain_drivers AS (
    SELECT namespace, cluster, session, NULL::VARCHAR AS submission_id, job_id,
           'DRIVER' AS type,
           -- A plain driver has no job-API status: Ray reports it SUCCEEDED once gone.
           CASE WHEN driver_state = 'FINISHED' THEN 'SUCCEEDED' ELSE 'RUNNING' END AS status,
           driver_state, entrypoint,
           NULL::VARCHAR AS message, NULL::VARCHAR AS error_type,
           start_time, end_time,
           start_time AS driver_start_time, end_time AS driver_end_time,
           driver_pid, driver_node_id,
           NULL::BIGINT AS driver_exit_code, NULL::VARCHAR AS driver_agent_http_address,
           metadata, serialized_runtime_env
    FROM driver_jobs
    WHERE submission_id IS NULL
),
every_job AS (
    SELECT * FROM plain_drivers
    UNION ALL BY NAME
    SELECT * FROM submission_jobs
)
SELECT
    j.namespace, j.cluster, j.session, j.job_id, j.type, j.submission_id, j.status,
    j.driver_state, j.entrypoint, j.message, j.error_type,
    to_us(j.start_time) AS start_time,
    to_us(j.end_time) AS end_time,
    to_us(j.driver_start_time) AS driver_start_time,
    to_us(j.driver_end_time) AS driver_end_time,
    j.driver_pid, j.driver_node_id, n.node_ip AS driver_node_ip,
    j.driver_exit_code, j.driver_agent_http_address, j.metadata, j.serialized_runtime_env
FROM every_job j
LEFT JOIN nodes n
    ON n.namespace = j.namespace AND n.cluster = j.cluster AND n.session = j.session
   AND n.node_id = j.driver_node_id;
