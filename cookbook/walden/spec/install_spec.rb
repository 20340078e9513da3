# frozen_string_literal: true

RSpec.describe Walden::Install do
  it 'installs from a local .deb when a source is given' do
    package = { 'source' => '/var/cache/walden_1.0_amd64.deb', 'version' => '1.0' }
    expect(described_class.plan(package, { 'uri' => 'x' }))
      .to eq('resource' => 'dpkg_package', 'name' => 'walden', 'source' => '/var/cache/walden_1.0_amd64.deb')
  end

  it 'refuses a source that is not an absolute .deb path' do
    expect { described_class.plan({ 'source' => 'walden.deb' }, {}) }.to raise_error(Walden::ConfigError)
    expect { described_class.plan({ 'source' => '/tmp/walden.tar' }, {}) }.to raise_error(Walden::ConfigError)
  end

  it 'declares the apt repository when a URI is given' do
    apt = { 'uri' => 'https://apt.example.org/walden', 'distribution' => 'bookworm', 'components' => ['main'],
            'key' => 'https://apt.example.org/key.asc', 'arch' => nil }
    expect(described_class.plan({ 'version' => '1.2.0' }, apt))
      .to eq('resource' => 'package', 'name' => 'walden', 'version' => '1.2.0',
             'apt_repository' => { 'name' => 'walden', 'uri' => 'https://apt.example.org/walden',
                                   'components' => ['main'], 'distribution' => 'bookworm',
                                   'key' => 'https://apt.example.org/key.asc' })
  end

  it 'uses a repository configured elsewhere otherwise' do
    expect(described_class.plan(nil, nil)).to eq('resource' => 'package', 'name' => 'walden')
  end

  it 'matches the defaults in attributes/default.rb' do
    attrs = default_attributes['walden']
    expect(described_class.plan(attrs['package'], attrs['apt'])).to eq('resource' => 'package', 'name' => 'walden')
  end
end
