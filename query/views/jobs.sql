-- One row per Ray job (driver). A job started through the job API carries its
-- submission id in the driver's metadata; its submission status comes from submission
-- job events when Ray exports them.
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
submission_definition AS (
    SELECT * FROM submission_job_definition_events
    QUALIFY row_number() OVER (
        PARTITION BY namespace, cluster, session, submission_id ORDER BY event_time DESC) = 1
),
submission AS (
    SELECT namespace, cluster, session, submission_id,
           arg_max(state, (state_time, seq)) FILTER (state IS NOT NULL) AS status,
           arg_max(state_message, (state_time, seq)) AS message,
           arg_max(error_type, (state_time, seq)) FILTER (error_type <> '') AS error_type,
           arg_max(driver_exit_code, state_time) FILTER (driver_exit_code IS NOT NULL)
               AS driver_exit_code,
           arg_max(driver_agent_http_address, state_time)
               FILTER (driver_agent_http_address <> '') AS driver_agent_http_address,
           min(state_time) AS submission_start_time,
           max(state_time) FILTER (state IN ('SUCCEEDED', 'FAILED', 'STOPPED'))
               AS submission_end_time
    FROM submission_job_lifecycle_events
    GROUP BY ALL
),
driver_jobs AS (
    SELECT namespace, cluster, session, job_id,
           d.metadata['job_submission_id'] AS submission_id,
           d.entrypoint, d.driver_pid, d.driver_node_id, d.metadata,
           d.serialized_runtime_env, h.driver_state, h.start_time, h.end_time
    FROM definition d
    FULL OUTER JOIN history h USING (namespace, cluster, session, job_id)
)
SELECT
    namespace, cluster, session,
    j.job_id,
    CASE WHEN coalesce(j.submission_id, sd.submission_id) IS NULL THEN 'DRIVER'
         ELSE 'SUBMISSION' END AS type,
    coalesce(j.submission_id, sd.submission_id) AS submission_id,
    -- A plain driver has no job-API status: Ray reports it SUCCEEDED once it is gone.
    CASE WHEN coalesce(j.submission_id, sd.submission_id) IS NOT NULL THEN s.status
         WHEN j.driver_state = 'FINISHED' THEN 'SUCCEEDED'
         ELSE 'RUNNING' END AS status,
    j.driver_state,
    coalesce(j.entrypoint, sd.entrypoint) AS entrypoint,
    s.message,
    s.error_type,
    to_us(coalesce(s.submission_start_time, j.start_time)) AS start_time,
    to_us(coalesce(s.submission_end_time, j.end_time)) AS end_time,
    to_us(j.start_time) AS driver_start_time,
    to_us(j.end_time) AS driver_end_time,
    j.driver_pid,
    j.driver_node_id,
    n.node_ip AS driver_node_ip,
    s.driver_exit_code,
    s.driver_agent_http_address,
    coalesce(sd.metadata, j.metadata) AS metadata,
    coalesce(sd.serialized_runtime_env, j.serialized_runtime_env) AS serialized_runtime_env
FROM driver_jobs j
FULL OUTER JOIN submission_definition sd USING (namespace, cluster, session, submission_id)
LEFT JOIN submission s USING (namespace, cluster, session, submission_id)
LEFT JOIN nodes n
    ON n.namespace = namespace AND n.cluster = cluster AND n.session = session
   AND n.node_id = j.driver_node_id;
