-- One row per worker process, plus one per driver (Ray lists drivers as workers whose
-- id is the job id followed by 0xff bytes; 2.60 reports them only through job events,
-- which do not carry the driver process's own start and end times: the job's driver
-- start and end, stamped by GCS within a few ms of them, stand in).
CREATE OR REPLACE VIEW workers AS
WITH definition AS (
    SELECT * FROM worker_definition_events
    QUALIFY row_number() OVER (
        PARTITION BY namespace, cluster, session, worker_id ORDER BY event_time DESC) = 1
),
history AS (
    SELECT namespace, cluster, session, worker_id,
           any_value(job_id) FILTER (job_id IS NOT NULL) AS job_id,
           arg_max(state, (state_time, seq)) FILTER (state IS NOT NULL) AS state,
           arg_max(worker_launch_time, state_time) FILTER (worker_launch_time IS NOT NULL)
               AS worker_launch_time,
           arg_max(worker_launched_time, state_time) FILTER (worker_launched_time IS NOT NULL)
               AS worker_launched_time,
           arg_max(start_time, state_time) FILTER (start_time IS NOT NULL) AS start_time,
           arg_max(end_time, state_time) FILTER (end_time IS NOT NULL) AS end_time,
           arg_max(exit_type, state_time) FILTER (exit_type IS NOT NULL) AS exit_type,
           arg_max(exit_detail, state_time) FILTER (exit_type IS NOT NULL) AS exit_detail
    FROM worker_lifecycle_events
    GROUP BY ALL
),
processes AS (
    SELECT namespace, cluster, session, worker_id,
           h.state = 'ALIVE' AS is_alive,
           d.worker_type,
           h.exit_type,
           d.node_id,
           d.pid,
           h.exit_detail,
           coalesce(d.job_id, h.job_id) AS job_id,
           to_us(h.worker_launch_time) AS worker_launch_time,
           to_us(h.worker_launched_time) AS worker_launched_time,
           to_us(h.start_time) AS start_time,
           to_us(h.end_time) AS end_time
    FROM definition d
    FULL OUTER JOIN history h USING (namespace, cluster, session, worker_id)
),
drivers AS (
    SELECT namespace, cluster, session,
           job_id || repeat('f', 48) AS worker_id,
           driver_state IS DISTINCT FROM 'FINISHED' AS is_alive,
           'DRIVER' AS worker_type,
           NULL::VARCHAR AS exit_type,
           driver_node_id AS node_id,
           driver_pid AS pid,
           NULL::VARCHAR AS exit_detail,
           job_id,
           NULL::TIMESTAMPTZ AS worker_launch_time,
           NULL::TIMESTAMPTZ AS worker_launched_time,
           driver_start_time AS start_time,
           driver_end_time AS end_time
    FROM jobs
    WHERE job_id IS NOT NULL
),
everyone AS (
    SELECT * FROM processes
    UNION ALL BY NAME
    SELECT * FROM drivers
)
SELECT w.namespace, w.cluster, w.session, w.worker_id, w.is_alive, w.worker_type,
       w.exit_type, w.node_id, n.node_ip AS ip, w.pid, w.exit_detail, w.job_id,
       w.worker_launch_time, w.worker_launched_time, w.start_time, w.end_time
FROM everyone w
LEFT JOIN nodes n
    ON n.namespace = w.namespace AND n.cluster = w.cluster AND n.session = w.session
   AND n.node_id = w.node_id;
