"""The --task and --task-csv options of extract_features.py and downstream.py: a built-in
task (tasks.py) or one of one's own (task_csv.py)."""
from ..cli import UserError, existing_file
from . import task_csv
from .tasks import TASKS


def add_task_options(parser):
    parser.add_argument("--task", choices=tuple(TASKS), help="a built-in task")
    parser.add_argument("--task-csv", metavar="FILE", type=existing_file,
                        help="a task of one's own: a CSV of path, label (or ';'-separated labels) and split per audio "
                             "file (docs/own-data.md)")


def task_from_args(args):
    """(the task the command line names, the Dataset of a task of one's own or None)."""
    if args.task and args.task_csv:
        raise UserError("give --task or --task-csv, not both")
    if args.task_csv:
        return task_csv.read(args.task_csv, args.data_root)
    if args.task is None:
        raise UserError(f"give --task ({', '.join(TASKS)}) or --task-csv FILE")
    return TASKS[args.task], None
