// Package deploy applies sets of Kubernetes objects to a cluster, shows
// what applying them would change, waits until they are ready and prunes
// what left the set, without ever deleting what kix does not own.
//
// # Apply
//
// Objects are applied with server-side apply (field manager "kix") in
// stages: CustomResourceDefinitions (then waited for until Established
// and served by discovery), Namespaces, other cluster-scoped objects,
// namespaced objects, and admission webhooks last. Objects within a stage
// are applied in parallel.
// Before a stage changes anything, its changed objects are sent as a
// server-side dry run; if any is refused (a field the API rejects, a
// conflict with another field manager), the stage is not applied at all.
//
// Every applied object carries kix.dev/checksum, the checksum of its
// desired content. On the next apply, an object whose live copy carries the
// same checksum, and whose fields no other field manager has written since
// kix applied it, is up to date and is not sent: re-applying an unchanged
// set of a thousand objects costs a few list requests. A hand edit (kubectl
// edit, kubectl scale) is a write by another manager to a field kix sets,
// so the object is applied again and the edit reverted (or, if the editor
// now owns the field, reported as a conflict until --force-conflicts).
//
// # Inventories and prune
//
// An Inventory names a set. It is recorded as an ApplySet (KEP-3659): a
// ConfigMap parent labelled applyset.kubernetes.io/id, annotated with the
// group-kinds and namespaces the members live in, and every member labelled
// applyset.kubernetes.io/part-of with the ID. Tools that read ApplySets,
// kubectl among them, see the same members.
//
// A worked example. Inventory "shop" holds ConfigMap/shop/a,
// ConfigMap/shop/b and Deployment/shop/web; the parent says
// "ConfigMap,Deployment.apps" in namespace shop. The new set is
// ConfigMap/shop/a and Service/shop/web.
//
//  1. Before applying, the parent is rewritten with the union of old and new:
//     "ConfigMap,Deployment.apps,Service". If the apply dies now, the next
//     one still knows to look for Deployments.
//  2. ConfigMap/shop/a (unchanged) is skipped; Service/shop/web is created.
//  3. Prune lists, for each of those group-kinds in namespace shop, the
//     objects labelled part-of=<shop's ID>: a, b and web (Deployment), and
//     a hand-made ConfigMap/shop/c is not among them, since it lacks the
//     label. The members not in the new set are b and Deployment web; they
//     are deleted, in reverse stage order, each with its UID as a
//     precondition. An object annotated kix.dev/prune: disabled is kept and
//     reported; so is a Namespace or CRD that an object which stays needs,
//     or whose deletion would take objects kix does not own.
//  4. The parent is rewritten with exactly the new set: "ConfigMap,Service".
//
// A prune refuses to run with an empty set unless told to (AllowEmpty):
// an evaluation that produced nothing by mistake must not delete
// everything. It also refuses while the parent names a kind whose API group
// cannot be discovered (an aggregated API that is down): it cannot see
// those members, and a prune that recorded the set without them would
// forget them.
package deploy
