# frozen_string_literal: true

module Walden
  # How the package gets onto the host: a local .deb, or apt (with the
  # repository declared here when a URI is given, else one configured elsewhere).
  module Install
    PACKAGE = 'walden'

    module_function

    def plan(package, apt)
      package = Util.stringify(package || {})
      apt = Util.stringify(apt || {})
      name = Util.present?(package['name']) ? package['name'] : PACKAGE
      source = package['source']
      Util.present?(source) ? local(name, source) : from_apt(name, package['version'], apt)
    end

    def local(name, source)
      unless source.start_with?('/') && source.end_with?('.deb')
        raise ConfigError, "node['walden']['package']['source'] must be the absolute path of a .deb, " \
                           "not #{source.inspect}"
      end

      { 'resource' => 'dpkg_package', 'name' => name, 'source' => source }
    end

    def from_apt(name, version, apt)
      result = { 'resource' => 'package', 'name' => name }
      result['version'] = version.to_s if Util.present?(version)
      result['apt_repository'] = repository(apt) if Util.present?(apt['uri'])
      result
    end

    def repository(apt)
      repo = { 'name' => PACKAGE, 'uri' => apt['uri'], 'components' => Array(apt['components'] || 'main') }
      %w[distribution key arch].each { |k| repo[k] = apt[k] if Util.present?(apt[k]) }
      repo
    end
  end
end
