"""Projects by id, their tags and renames: what an MLflow experiment holds beyond a name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, delete, select, update

from registrum import validation as v
from registrum.entities import Project
from registrum.errors import AlreadyExists, ProjectNotFound
from registrum.store import schema as t
from registrum.store._base import StoreBase, project_record


class ProjectTagsMixin(StoreBase):
    def project_by_id(self, project_id: int) -> Project:
        """The project with this id (ids are stable; names can change)."""
        v.integer(project_id, "project id", minimum=1)
        with self._read() as conn:
            r = conn.execute(select(t.projects).where(t.projects.c.id == project_id)).first()
            if r is None:
                raise ProjectNotFound(f"project id {project_id} does not exist")
            self._require(conn, int(r.id), "viewer", name=r.name)
        return project_record(r)

    def set_project_tags(self, project: str, tags: Mapping[str, str]) -> None:
        """Sets tags of a project (an existing key takes the new value)."""
        tag_map = v.string_map(tags, "tags")
        with self._tx() as conn:
            project_id = self._project_id(conn, project, need="editor")
            before = self._project_tag_rows(conn, [project_id], list(tag_map)).get(project_id, {})
            self._write_tags(conn, t.project_tags, "project_id", project_id, tag_map)
            if tag_map:
                name = self._project_name(conn, project_id)
                self._audit(
                    conn,
                    "project.tags_set",
                    "project",
                    name,
                    project=name,
                    before=before,
                    after=tag_map,
                )

    def delete_project_tag(self, project: str, key: str) -> None:
        v.key(key, "tag key")
        with self._tx() as conn:
            project_id = self._project_id(conn, project, need="editor")
            before = self._project_tag_rows(conn, [project_id], [key]).get(project_id, {})
            pt = t.project_tags.c
            conn.execute(delete(t.project_tags).where(pt.project_id == project_id, pt.key == key))
            if before:
                name = self._project_name(conn, project_id)
                self._audit(
                    conn, "project.tag_deleted", "project", name, project=name, before=before
                )

    def project_tags(self, projects: Sequence[str]) -> dict[str, dict[str, str]]:
        """The tags of each of these projects, by name; projects the signed-in user may not
        see, or that do not exist, are left out."""
        names = list(dict.fromkeys(projects))
        if not names:
            return {}
        with self._read() as conn:
            ids = self._visible_named(conn, names)
            tags = self._project_tag_rows(conn, list(ids), None)
        return {name: tags.get(pid, {}) for pid, name in ids.items()}

    def rename_project(self, name: str, new_name: str) -> Project:
        """Gives a project a new name; its id, runs and members stay. Needs its admin."""
        new_name = v.name(new_name, "project name")
        with self._tx() as conn:
            project_id = self._project_id(conn, name, need="admin")
            old = self._project_name(conn, project_id)
            if new_name != old:
                taken = conn.execute(
                    select(t.projects.c.id).where(t.projects.c.name == new_name)
                ).scalar()
                if taken is not None:
                    raise AlreadyExists(f"project {new_name!r} already exists", project=new_name)
                conn.execute(
                    update(t.projects).where(t.projects.c.id == project_id).values(name=new_name)
                )
                self._audit(
                    conn,
                    "project.renamed",
                    "project",
                    new_name,
                    project=new_name,
                    before={"name": old},
                    after={"name": new_name},
                )
        return self.project_by_id(project_id)

    def _project_tag_rows(
        self, conn: Connection, project_ids: list[int], keys: list[str] | None
    ) -> dict[int, dict[str, str]]:
        if not project_ids:
            return {}
        pt = t.project_tags.c
        query = select(pt.project_id, pt.key, pt.value).where(pt.project_id.in_(project_ids))
        if keys is not None:
            query = query.where(pt.key.in_(keys))
        out: dict[int, dict[str, str]] = {}
        for pid, key, value in conn.execute(query):
            out.setdefault(int(pid), {})[key] = value
        return out
