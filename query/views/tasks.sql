-- One row per task attempt: the union of its definition and every lifecycle transition
-- reported by any node, following Ray's protobuf_to_task_state_dict
-- (ray/util/state/common.py): the state is the last transition in TaskStatus
-- declaration order (not the latest timestamp), NIL without any; the error shows only
-- on a FAILED attempt, without ANSI colour codes; an actor task takes its actor's repr
-- name when it has no name of its own; its times are rounded as Ray reads them
-- (ray_task_us).
CREATE OR REPLACE VIEW tasks AS
WITH definitions AS (
    SELECT namespace, cluster, session, task_id, attempt_number,
           task_type AS type, task_name AS name, NULL::VARCHAR AS actor_id,
           language, func_module, func_class, func_name, required_resources,
           serialized_runtime_env, job_id, parent_task_id, placement_group_id,
           label_selector, is_detached_actor, call_site, event_time
    FROM task_definition_events
    UNION ALL
    SELECT namespace, cluster, session, task_id, attempt_number,
           'ACTOR_TASK' AS type, task_name AS name, actor_id,
           language, func_module, func_class, func_name, required_resources,
           serialized_runtime_env, job_id, parent_task_id, placement_group_id,
           label_selector, is_detached_actor, call_site, event_time
    FROM actor_task_definition_events
),
definition AS (
    SELECT * FROM definitions
    QUALIFY row_number() OVER (
        PARTITION BY namespace, cluster, session, task_id, attempt_number
        ORDER BY event_time DESC) = 1
),
transitions AS (
    SELECT namespace, cluster, session, task_id, attempt_number, state,
           task_status_rank(state) AS rank, min(state_time) AS state_time
    FROM task_lifecycle_events
    WHERE state IS NOT NULL
    GROUP BY ALL
),
history AS (
    SELECT namespace, cluster, session, task_id, attempt_number,
           arg_max(state, rank) AS state,
           list({'state': state, 'time': ray_task_us(state_time)} ORDER BY rank) AS events,
           min(state_time) FILTER (state = 'PENDING_ARGS_AVAIL') AS creation_time,
           min(state_time) FILTER (state = 'RUNNING') AS start_time,
           arg_max(state_time, rank) FILTER (state IN ('FINISHED', 'FAILED')) AS end_time
    FROM transitions
    GROUP BY ALL
),
execution AS (
    -- Each field is reported by one party (the submitter: node, worker, error; the
    -- executing worker: pid, log files and offsets), possibly in separate events:
    -- take each field's latest reported value.
    SELECT namespace, cluster, session, task_id, attempt_number,
           any_value(job_id) AS job_id,
           arg_max(node_id, event_time) FILTER (node_id IS NOT NULL) AS node_id,
           arg_max(worker_id, event_time) FILTER (worker_id IS NOT NULL) AS worker_id,
           arg_max(worker_pid, event_time) FILTER (worker_pid IS NOT NULL) AS worker_pid,
           arg_max(error_type, event_time) FILTER (error_type IS NOT NULL) AS error_type,
           arg_max(error_message, event_time) FILTER (error_type IS NOT NULL) AS error_message,
           arg_max(stdout_file, event_time) FILTER (stdout_file IS NOT NULL) AS stdout_file,
           arg_max(stdout_start, event_time) FILTER (stdout_start IS NOT NULL) AS stdout_start,
           arg_max(stdout_end, event_time) FILTER (stdout_end IS NOT NULL) AS stdout_end,
           arg_max(stderr_file, event_time) FILTER (stderr_file IS NOT NULL) AS stderr_file,
           arg_max(stderr_start, event_time) FILTER (stderr_start IS NOT NULL) AS stderr_start,
           arg_max(stderr_end, event_time) FILTER (stderr_end IS NOT NULL) AS stderr_end,
           arg_max(is_debugger_paused, event_time) FILTER (is_debugger_paused IS NOT NULL)
               AS is_debugger_paused,
           arg_max(actor_repr_name, event_time) FILTER (actor_repr_name <> '') AS actor_repr_name
    FROM task_lifecycle_events
    GROUP BY ALL
)
SELECT
    namespace, cluster, session, task_id, attempt_number,
    CASE WHEN d.type = 'ACTOR_TASK' AND e.actor_repr_name IS NOT NULL
              AND d.name = d.func_class || '.' || d.func_name
         THEN e.actor_repr_name || '.' || d.func_name
         ELSE d.name END AS name,
    coalesce(h.state, 'NIL') AS state,
    d.type,
    CASE WHEN d.func_class <> '' THEN d.func_class || '.' || d.func_name
         ELSE d.func_name END AS func_or_class_name,
    coalesce(d.job_id, e.job_id) AS job_id,
    CASE d.type WHEN 'ACTOR_TASK' THEN d.actor_id
                WHEN 'ACTOR_CREATION_TASK' THEN substr(task_id, 17) END AS actor_id,
    d.parent_task_id,
    e.node_id,
    e.worker_id,
    e.worker_pid,
    CASE WHEN h.state = 'FAILED' THEN coalesce(e.error_type, '') END AS error_type,
    CASE WHEN h.state = 'FAILED'
         THEN regexp_replace(coalesce(e.error_message, ''), chr(27) || '[^m]*m', '', 'g')
         END AS error_message,
    d.language,
    d.required_resources,
    d.placement_group_id,
    ray_task_us(h.creation_time) AS creation_time,
    ray_task_us(h.start_time) AS start_time,
    ray_task_us(h.end_time) AS end_time,
    h.events,
    e.stdout_file, e.stdout_start, e.stdout_end,
    e.stderr_file, e.stderr_start, e.stderr_end,
    d.serialized_runtime_env,
    d.label_selector,
    d.is_detached_actor,
    d.call_site,
    e.is_debugger_paused,
    e.actor_repr_name,
    d.func_module
FROM definition d
FULL OUTER JOIN history h USING (namespace, cluster, session, task_id, attempt_number)
FULL OUTER JOIN execution e USING (namespace, cluster, session, task_id, attempt_number);
