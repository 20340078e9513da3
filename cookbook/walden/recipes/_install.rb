# frozen_string_literal: true

# The walden package, as Walden::Install decided. Installing enables
# walden.service but starts nothing (the package's own rule).
install = node.run_state.fetch(Walden::Context::RUN_STATE_KEY).install
repo = install['apt_repository']

if repo
  apt_repository repo['name'] do
    uri repo['uri']
    components repo['components']
    distribution repo['distribution'] if repo['distribution']
    key repo['key'] if repo['key']
    arch repo['arch'] if repo['arch']
  end
end

if install['resource'] == 'dpkg_package'
  dpkg_package install['name'] do
    source install['source']
  end
else
  package install['name'] do
    version install['version'] if install['version']
  end
end
